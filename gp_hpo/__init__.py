"""gp_hpo domain of dlsuite."""
import common  # noqa: F401  (TensorFlow, wherever a module first imports it, loads with its start-up noise silenced)
