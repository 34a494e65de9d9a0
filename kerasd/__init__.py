"""kerasd: train Keras models on a kerasd server.

The SDK needs only httpx (with httpx-sse), tenacity and numpy; `client.remote(keras_model)` imports Keras when used.

    import kerasd
    client = kerasd.Client("http://127.0.0.1:8000")
    model = client.remote(keras_model)      # compile / fit / evaluate / predict on the server
    client.datasets.upload(...); client.jobs.create(...); client.jobs.events(job_id)   # plain resources
"""

__version__ = "0.1.0"

from kerasd import data
from kerasd.client import AsyncClient, Client
from kerasd.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    JobCancelled,
    JobError,
    JobFailed,
    KerasdError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    ValidationError,
)
from kerasd.events import Event

__all__ = [
    "APIConnectionError", "APIError", "AsyncClient", "AuthenticationError", "BadRequest", "Client", "Conflict",
    "Event", "JobCancelled", "JobError", "JobFailed", "KerasdError", "NotFound", "PayloadTooLarge",
    "PermissionDenied", "RateLimited", "ServerError", "ServiceUnavailable", "ValidationError", "__version__",
    "data",
]
