"""`client.remote(keras_model)`: a Keras model whose compile, fit, evaluate and predict run on kerasd.

Keras's own argument names and objects are taken: optimizer, loss and metric objects or names are sent as their
serialized configs (keras_objects.py), callbacks as declared callback specs, numpy arrays as uploaded datasets
(once per content) and `kerasd.data.Dataset` pipelines as the server's pipeline spec (uploads.py, arguments.py);
what jobs return comes back as Keras returns it (results.py). Keras is imported only by this package.
"""

try:
    import keras  # noqa: F401
except ImportError as exc:  # the message is the point
    raise ImportError("client.remote(...) needs Keras installed locally: pip install 'kerasd[keras]' tensorflow "
                      "(or another Keras backend). The plain resources (client.models, .datasets, .jobs) work "
                      "without it.") from exc

from kerasd.remote.model import RemoteModel
from kerasd.remote.results import History

__all__ = ["History", "RemoteModel"]
