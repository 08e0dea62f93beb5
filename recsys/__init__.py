"""recsys domain of dlsuite."""
import common  # noqa: F401  (TensorFlow, wherever a module first imports it, loads with its start-up noise silenced)

DEMO_ROOT = "recsys-demo"  # the cache folder (under common.data.cache_root) of every generated demo set
