"""Put this folder on PYTHONPATH to run as on a torch-only machine (the lent GPU image has no TensorFlow)."""
import sys
for name in ("tensorflow", "keras", "tensorflow_datasets"):
    sys.modules[name] = None  # import raises ImportError, as on a torch-only machine
