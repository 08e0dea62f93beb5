"""nlp domain of dlsuite."""
import common  # noqa: F401  (TensorFlow, wherever it is first imported, loads with its start-up noise silenced)
