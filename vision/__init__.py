"""vision domain of dlsuite."""
import common  # noqa: F401  (imports TensorFlow with its start-up noise silenced)
