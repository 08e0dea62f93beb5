"""vision domain of dlsuite."""
import common  # noqa: F401  (TensorFlow, where a module imports it, loads with its start-up noise silenced)
