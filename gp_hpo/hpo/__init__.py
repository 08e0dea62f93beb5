"""Hyperparameter optimization (D2L chapter 19) on Optuna studies.

`space` (configuration spaces), `searchers` (random search, GP Bayesian optimization
with expected improvement, and the Optuna sampler they plug into), `schedulers`
(FIFO, synchronous successive halving, Hyperband, ASHA and its Optuna pruner),
`objectives` (the book's LeNet on Fashion-MNIST, an offline demo task, Branin,
Hartmann-6), `tuner` (workers, heartbeats and retries, results) and `command`
(`python -m gp_hpo.hpo run`).
"""

from common import cli
from gp_hpo.hpo.command import COMMANDS, DEMO, DESCRIPTION, Config


def main(argv=None):
    """`python -m gp_hpo.hpo run ...`; returns the exit code (see `gp_hpo.hpo.command`)."""
    return cli.main(DESCRIPTION, Config, COMMANDS, demo=DEMO, argv=argv)
