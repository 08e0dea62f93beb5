"""Hyperparameter optimization (D2L chapter 19) on Optuna studies.

`space` (configuration spaces), `searchers` (random search, GP Bayesian optimization
with expected improvement, and the Optuna sampler they plug into), `schedulers`
(FIFO, synchronous successive halving, Hyperband, ASHA and its Optuna pruner),
`objectives` (the book's LeNet on Fashion-MNIST, an offline demo task, Branin,
Hartmann-6), `tuner` (workers, heartbeats and retries, results) and `command`
(`python -m gp_hpo.hpo run`).

From Python, `run` is the command: `hpo.run(hpo.Config(searcher="bo", trials=12), demo=True,
run_dir="runs/hpo-api")` (`run_dir`: the study directory, `--study-dir`) returns the summary dict the command
prints (`best_config`, `best_error`, ...).
"""

from common import cli
from gp_hpo.hpo.command import COMMANDS, DEMO, DESCRIPTION, Config

VERBS = {"train": "run"}  # the field's word: a study is run, not trained
TFDS = {"fashion_mnist": "Fashion-MNIST, for the fashion_mnist objective"}  # --tfds
SPEC = cli.Spec("gp_hpo.hpo", DESCRIPTION, Config, COMMANDS, DEMO, tfds=TFDS)
main = SPEC.main  # `python -m gp_hpo.hpo run ...`; returns the exit code (see `gp_hpo.hpo.command`)
run = SPEC.api("run")
