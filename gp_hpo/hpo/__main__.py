"""`python -m gp_hpo.hpo run ...` (see gp_hpo.hpo.command)."""
import sys

from gp_hpo.hpo import main

if __name__ == "__main__":
    sys.exit(main())
