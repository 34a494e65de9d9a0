"""kerasd: train Keras models on a kerasd server. This package holds the command line (`kerasd`)."""

__version__ = "0.1.0"
