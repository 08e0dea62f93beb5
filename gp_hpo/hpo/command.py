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
`wall_seconds`, `trials`, `failed_trials`, ...), and each finished trial prints one line
on stderr. The same command with the same `--storage URL --study NAME` on another
machine joins the study; `--resume` continues the newest (or `--study-dir`) study with
its saved settings without re-running finished trials.

A failed command never changes an existing study: every check (the study directory,
the objective and space, the settings of the study already in the storage, the flags
`--resume` would change) runs before the first write into it. A study where every trial
failed exits 1 with the first error (tracebacks in `errors/trial-N.txt`); Ctrl-C marks
the running trials failed ("interrupted"), queues their retries and exits 130 with the
`--resume` command that continues.
"""
import argparse
import dataclasses
import math
import os
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

from common import cli
from common.errors import DlsuiteError, UsageError
from common.files import writable_dir, write_json
from gp_hpo.hpo import objectives
from gp_hpo.hpo.schedulers import SCHEDULERS, halving_round, rung_levels
from gp_hpo.hpo.searchers import OPTUNA_SAMPLERS, SEARCHERS
from gp_hpo.hpo.space import ConfigSpace
from gp_hpo.hpo.tuner import ERRORS, JOURNAL, StudySettings, Tuner, find_study, settings_differ


class Interrupted(DlsuiteError):
    """Ctrl-C stopped the study; its running trials are failed and queued for retry (exit 130)."""

    exit_code = 130

@dataclass
class Config(cli.Config):
    # the per-worker flags `--resume` accepts with new values (more --trials, other --workers, ...); every
    # other flag names or defines the study and keeps its saved value
    RESUME_MAY_CHANGE: typing.ClassVar[tuple] = ("workers", "trials", "max_wall_seconds", "initial_random",
                                                 "heartbeat_seconds", "grace_seconds", "max_retry")

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
    seed: int = field(default=0, metadata=cli.bounds(cli.SEED_BOUNDS["bounds"][4],
                                                     "seed of the searcher and of every trial"))
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


def _flag_value(name, value):
    return f"--{name.replace('_', '-')} {value}"


def check_resume_flags(ctx):
    """`--resume` keeps the study's settings: a flag outside `Config.RESUME_MAY_CHANGE` given with another
    value than the study's config.json is a UsageError."""
    changed = [f.name for f in dataclasses.fields(ctx.config) if f.name not in ctx.config.RESUME_MAY_CHANGE
               and hasattr(ctx.args, f.name) and f.name in ctx.saved and getattr(ctx.args, f.name) != ctx.saved[f.name]]
    if changed:
        given = ", ".join(f"{_flag_value(k, getattr(ctx.args, k))} (the study has {ctx.saved[k]!r})" for k in changed)
        raise UsageError(f"--resume keeps the study's settings: {given}; omit {'it' if len(changed) == 1 else 'them'}, "
                         f"or start a new study with another --study-dir")


def check_existing_study(settings, study_dir, resume):
    """Before anything is written: the study in the storage (`--resume` needs one) was made with these
    settings (STUDY_KEYS), else one UsageError line."""
    study = find_study(settings)
    if study is None:
        if resume:
            raise UsageError(f"--resume: {settings.storage} holds no study {settings.study!r}; pass the "
                             "--study-dir of an earlier run (or start a new one without --resume)")
        return
    differ = settings_differ(study, settings)
    if not differ:
        return
    saved = study.user_attrs["settings"]
    made = ", ".join(_flag_value(k, saved.get(k)) for k in differ if k != "space")
    made = f"; it was made with {made}" if made else ""
    if resume:
        raise UsageError(f"--resume: study {settings.study!r} in {settings.storage} was made with other settings "
                         f"({', '.join(differ)}) than {study_dir}/config.json now gives{made} (was its --space file "
                         f"or --objective changed?); restore them, or start a new study with another --study-dir")
    raise UsageError(f"study {settings.study!r} already exists with other settings ({', '.join(differ)}){made}; "
                     "use the same flags, another --study, or --resume to take its settings")


def check_outcome(summary, tuner, study_dir):
    """A study whose every trial failed is a failed run: one line with the number of failed trials and the
    first error."""
    if summary["trials"] and summary["failed_trials"] == summary["trials"]:
        first = next(r for r in tuner.records if r["state"] == "failed")
        path = study_dir / ERRORS / f"trial-{first['trial']}.txt"
        where = f" (traceback in {path})" if path.is_file() else ""
        raise DlsuiteError(f"all {summary['failed_trials']} trials failed; the first, trial {first['trial']}: "
                           f"{first['message']}{where}; fix the objective and start a new --study-dir")


def run(ctx):
    """Create (or join, or resume) the study, run the workers, write results.csv and incumbent.png.

    Every check runs before the first write into the study directory (see the module docstring).
    """
    config, study_dir, resume = ctx.config, Path(ctx.run_dir), ctx.args.resume
    if resume:
        check_resume_flags(ctx)
        if not config.storage and not (study_dir / JOURNAL).exists():
            raise UsageError(f"--resume: {study_dir} holds no {JOURNAL}; pass the --study-dir of an earlier run")
    if ctx.data_dir is not None:
        os.environ[objectives.DATA_DIR_ENV] = str(Path(ctx.data_dir).resolve())
    if ctx.tfds is not None:
        use_tfds(ctx)
    settings = settings_from(config, study_dir)
    check_existing_study(settings, study_dir, resume)
    writable_dir(study_dir, "--study-dir")
    write_json(study_dir / "config.json", {**dataclasses.asdict(config), "module": ctx.prog,
                                           "command": " ".join(["python -m", ctx.prog, *ctx.argv]),
                                           **({"data": ctx.data_source()} if ctx.tfds is not None else {})})
    tuner = Tuner(settings)
    try:
        summary = tuner.run(config.workers, study_dir=study_dir)
    except KeyboardInterrupt:
        stopped = (f"trial{'s' * (len(tuner.interrupted) > 1)} {', '.join(map(str, tuner.interrupted))} marked failed "
                   "and queued for retry; " if tuner.interrupted else "")
        raise Interrupted(f"interrupted: {stopped}continue with: python -m {ctx.prog} run --resume "
                          f"--study-dir {study_dir}") from None
    summary.update(study_dir=str(study_dir), storage=settings.storage, study=settings.study)
    write_json(study_dir / "summary.json", summary)
    check_outcome(summary, tuner, study_dir)
    return summary


def use_tfds(ctx):
    """Give the trials (in any worker process) the TFDS dataset `--tfds` chose; it must feed the
    `fashion_mnist` objective and be prepared (one line otherwise, before the study is written)."""
    import json

    from common import tfds_source

    if ctx.config.objective != "gp_hpo.hpo.objectives:fashion_mnist":
        raise UsageError(f"--tfds {ctx.tfds['name']} feeds the fashion_mnist objective, not {ctx.config.objective}")
    tfds_source.load(ctx.tfds["name"], "train", ctx.tfds["data_dir"])
    os.environ[objectives.TFDS_ENV] = json.dumps(ctx.tfds)


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
