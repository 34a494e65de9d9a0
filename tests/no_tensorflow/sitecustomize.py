"""Put on PYTHONPATH to start a process as if TensorFlow were not installed (for the JAX and PyTorch worker tests)."""

import sys
from importlib.machinery import PathFinder


class _PathFinderWithoutTensorFlow(PathFinder):
    """The path finder, blind to TensorFlow: `import tensorflow` raises ModuleNotFoundError and
    `importlib.util.find_spec("tensorflow")` returns None, as where it is not installed (PyTorch probes for it with
    find_spec when it is imported, and a finder that raised there would break what only asked)."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return None
        return super().find_spec(name, path, target)


sys.meta_path[:] = [_PathFinderWithoutTensorFlow if finder is PathFinder else finder for finder in sys.meta_path]
