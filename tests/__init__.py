import common  # noqa: F401  (silences TensorFlow start-up before any test imports it)
