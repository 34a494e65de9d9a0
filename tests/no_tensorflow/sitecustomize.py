"""Put on PYTHONPATH to start a process as if TensorFlow were not installed (for the JAX worker test)."""

import sys


class _HideTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _HideTensorFlow())
