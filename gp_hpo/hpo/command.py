"""`python -m gp_hpo.hpo run`: hyperparameter optimization of any objective on an Optuna study.

    python -m gp_hpo.hpo run --searcher random|bo --scheduler fifo|sh|hyperband|asha
        --workers N --trials T --max-epochs R [--min-epochs r --eta 3]
        [--objective package.module:function --space FILE.json] [--study-dir DIR]
        [--storage URL --study NAME] [--seed S] [--max-wall-seconds S] [--resume]
    python -m gp_hpo.hpo run --demo        # ASHA on an offline generated task, seconds

The study directory (default runs/hpo/<time>/) gets config.json, the study's journal
file (unless `--storage` names another), results.csv (one row per trial: state,
worker, seed, epochs used, error, start/end seconds, parameters), incumbent.png (best
validation error against wall time and against cumulative epochs) and summary.json; the
last line of stdout is the summary JSON (`best_config`, `best_error`, `total_epochs`,
`wall_seconds`, `trials`, `failed_trials`, ...). The same command with the same
`--storage URL --study NAME` on another machine joins the study; `--resume` continues
the newest (or `--study-dir`) study without re-running finished trials.
"""
import argparse
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import cli
from common.errors import UsageError
from common.training import Run, write_json
from gp_hpo.hpo import objectives
from gp_hpo.hpo.schedulers import SCHEDULERS, halving_round, rung_levels
from gp_hpo.hpo.searchers import OPTUNA_SAMPLERS, SEARCHERS
from gp_hpo.hpo.space import ConfigSpace
from gp_hpo.hpo.tuner import JOURNAL, StudySettings, Tuner

@dataclass
class Config(cli.Config):
    searcher: str = field(default="random", metadata={
        "choices": [*SEARCHERS, *OPTUNA_SAMPLERS],
        "help": "how configurations are proposed (tpe, optuna-gp: Optuna's samplers, for comparison)"})
    scheduler: str = field(default="fifo", metadata={"choices": list(SCHEDULERS),
                                                      "help": "how epochs are allotted / trials stopped "
                                                              "(optuna-asha: Optuna's SuccessiveHalvingPruner)"})
    workers: int = field(default=1, metadata=cli.at_least(1, "worker processes on this machine"))
    trials: int = field(default=20, metadata=cli.at_least(1, "trials to finish (first attempts; retries extra)"))
    max_epochs: int = field(default=9, metadata=cli.at_least(
        1, "r_max: epochs of a full trial (9 with eta 3: rungs 1, 3, 9)"))
    min_epochs: int = field(default=1, metadata=cli.at_least(1, "r_min: epochs of the lowest rung (sh, asha)"))
    eta: int = field(default=3, metadata=cli.at_least(2, "reduction factor between rungs (sh, asha)"))
    objective: str = field(default="gp_hpo.hpo.objectives:fashion_mnist",
                           metadata={"help": "package.module:function to minimise", "metavar": "M:F"})
    space: str = field(default="", metadata={"help": "configuration space JSON file ('': the objective's own)",
                                             "metavar": "FILE.json"})
    storage: str = field(default="", metadata={"help": "Optuna storage URL or journal file ('': journal.log "
                                                       "in the study directory)", "metavar": "URL"})
    study: str = field(default="hpo", metadata={"help": "study name inside the storage"})
    seed: int = field(default=0, metadata={"help": "seed of the searcher and of every trial"})
    max_wall_seconds: float = field(default=0.0, metadata=cli.bounds(
        "[0, inf)", "stop starting and stop running trials after this many seconds (0: no limit)"))
    initial_random: int = field(default=5, metadata=cli.at_least(1, "random configurations before BO's GP"))
    heartbeat_seconds: float = field(default=2.0, metadata=cli.positive("heartbeat interval of a running trial"))
    grace_seconds: float = field(default=20.0, metadata=cli.positive(
        "a running trial with no heartbeat for this long is failed and retried"))
    max_retry: int = field(default=2, metadata=cli.at_least(0, "retries of a trial whose worker died"))

    def validate(self):
        super().validate()
        if self.min_epochs > self.max_epochs:
            raise UsageError(f"--min-epochs ({self.min_epochs}) must not exceed --max-epochs ({self.max_epochs})")
        if self.grace_seconds <= self.heartbeat_seconds:
            raise UsageError("--grace-seconds must exceed --heartbeat-seconds")
        if self.scheduler == "sh":
            levels = rung_levels(self.min_epochs, self.max_epochs, self.eta)
            plan = halving_round(levels, self.eta)
            first = plan[0][1]  # configurations the first rung starts
            if self.trials <= first:
                raise UsageError(
                    f"--scheduler sh: --trials {self.trials} fills at most the first rung of a round "
                    f"({first} configurations; rungs {', '.join(map(str, levels))} epochs with eta {self.eta}), so "
                    f"no trial would train past {levels[0]} epoch(s); pass --trials {sum(n for _, n in plan)} "
                    f"(one full round), a smaller --max-epochs or a larger --eta, or use --scheduler asha")


DEMO = {"objective": "gp_hpo.hpo.objectives:demo", "scheduler": "asha", "trials": 12, "max_epochs": 9,
        "min_epochs": 1, "eta": 3}


def resolve_space(objective_path, space_file):
    """The configuration-space spec: `space_file` if given, else the objective's `space` attribute."""
    fn = objectives.load_objective(objective_path)
    if space_file:
        return ConfigSpace.from_json(space_file).spec
    if getattr(fn, "space", None) is None:
        raise UsageError(f"--objective {objective_path} has no default space; pass --space FILE.json")
    return ConfigSpace(fn.space).spec


def settings_from(config, study_dir):
    """StudySettings from the CLI config (storage defaults to the study directory's journal)."""
    return StudySettings(
        objective=config.objective, space=resolve_space(config.objective, config.space),
        storage=config.storage or str(Path(study_dir) / JOURNAL), study=config.study,
        searcher=config.searcher, scheduler=config.scheduler, trials=config.trials,
        min_epochs=config.min_epochs, max_epochs=config.max_epochs, eta=config.eta, seed=config.seed,
        initial_random=config.initial_random,
        deadline=time.time() + config.max_wall_seconds if config.max_wall_seconds > 0 else math.inf,
        heartbeat_seconds=config.heartbeat_seconds, grace_seconds=config.grace_seconds,
        max_retry=config.max_retry)


def run(ctx):
    """Create (or join, or resume) the study, run the workers, write results.csv and incumbent.png."""
    config, study_dir = ctx.config, Path(ctx.run_dir)
    if ctx.args.resume and not config.storage and not (study_dir / JOURNAL).exists():
        raise UsageError(f"--resume: {study_dir} holds no {JOURNAL}; pass the --study-dir of an earlier run")
    if ctx.data_dir is not None:
        os.environ[objectives.DATA_DIR_ENV] = str(Path(ctx.data_dir).resolve())
    settings = settings_from(config, study_dir)
    Run(study_dir).write_config(config, command=" ".join(["python -m", ctx.prog, *ctx.argv]))
    summary = Tuner(settings).run(config.workers, study_dir=study_dir)
    summary.update(study_dir=str(study_dir), storage=settings.storage, study=settings.study)
    write_json(study_dir / "summary.json", summary)
    return summary


def _arguments(parser):
    parser.add_argument("--study-dir", dest="run_dir", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                        help="the study directory (same as --run-dir; default: new runs/hpo/<time>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the study in --study-dir (or the newest) with its saved settings; "
                             "finished trials are not re-run")


COMMANDS = {"run": cli.Command(run, "tune an objective's hyperparameters on an Optuna study",
                               add_arguments=_arguments, configurable=True)}

DESCRIPTION = ("Hyperparameter optimization: random search, GP Bayesian optimization, successive halving, "
               "Hyperband and ASHA on Optuna studies")
