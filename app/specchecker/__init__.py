"""The spec checker: sandboxes that build Keras models from checked specs, and the Keras code they and workers run."""
