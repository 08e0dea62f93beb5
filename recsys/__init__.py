"""recsys domain of dlsuite."""
import common  # noqa: F401  (imports TensorFlow with its start-up noise silenced)

DEMO_ROOT = "recsys-demo"  # the cache folder (under common.data.cache_root) of every generated demo set
