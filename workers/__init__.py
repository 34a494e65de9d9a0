"""kerasd workers: Celery processes that run Keras jobs. Imports Keras; the API never imports this package."""
