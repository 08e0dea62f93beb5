"""One seed for Python, NumPy and, once it is loaded, Keras and TensorFlow.

`set_seed` seeds what is loaded now; when Keras is not loaded yet (a command whose model module loads
TensorFlow when it runs), `common.training` applies the same seed as it loads, before any model exists,
so a run is seeded the same whether TensorFlow came early or late, and a NumPy-only command (the GP,
the HPO tuner) never loads TensorFlow for it.
"""
import random
import sys

import numpy as np

_pending = None


def set_seed(seed):
    """Seed Python's `random`, NumPy's global generator and (now, or when it loads) Keras and TensorFlow."""
    global _pending
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    if "keras" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)
        _pending = None
    else:
        _pending = seed


def apply_pending():
    """Give Keras and TensorFlow the seed `set_seed` was called with before they loaded (once)."""
    global _pending
    if _pending is not None:
        import keras

        keras.utils.set_random_seed(_pending)
        _pending = None
