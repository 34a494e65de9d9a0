"""kerasd API: FastAPI routes over SQL, Redis and the Celery queue. Never imports TensorFlow."""

__version__ = "0.1.0"
