"""The `python -m <domain>.<model> train|evaluate|predict` scaffolding.

A model module declares its hyperparameters once as a dataclass deriving from
`TrainConfig`; every field becomes a `train` flag (`batch_size` -> `--batch-size`,
booleans get `--x/--no-x`, `metadata={"choices": ...}` restricts values, and
`metadata=bounds("[0, 1)")` (or `at_least(1)`, `positive()`, ...) declares the range
`Config.validate` checks, with one message for every model). The value a
run uses is: dataclass default, then the `--demo` preset, then a named `--preset`
(e.g. the book's settings), then (with `--resume`) the run's saved config.json, then
flags given explicitly. Usage errors print one line and
exit 2; a failed run prints one line and exits 1; Ctrl-C exits 130.
"""
import argparse
import dataclasses
import importlib
import json
import os
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

from common.distribute import STRATEGIES, configure_devices, is_chief, make_strategy, per_replica_batch_size
from common import runs, seeding, tfds_source
from common.errors import DlsuiteError, NoIntactCheckpoint, UsageError
from common.files import writable_dir

RUNS_ROOT = Path("runs")


def bounds(interval, help=None, **metadata):
    """Field metadata declaring the allowed interval, e.g. `"[0, 1)"`, `"(0, 1]"` or
    `"[1, inf)"` (brackets include, parentheses exclude), which `Config.validate` checks."""
    low_bracket, high_bracket = interval[0], interval[-1]
    low, high = (float(v) for v in interval[1:-1].split(","))
    if low_bracket not in "[(" or high_bracket not in "])" or not low < high:
        raise ValueError(f"bad interval {interval!r}")
    return {**metadata, "bounds": (low, high, low_bracket == "(", high_bracket == ")", interval),
            **({"help": help} if help is not None else {})}


def at_least(low, help=None, **metadata):
    """`bounds("[low, inf)")`: "--x must be at least LOW"."""
    return bounds(f"[{low}, inf)", help, **metadata)


def positive(help=None, **metadata):
    """`bounds("(0, inf)")`: "--x must be positive"."""
    return bounds("(0, inf)", help, **metadata)


def _bounds_message(low, high, low_open, high_open, interval):
    if high == float("inf"):
        if low == 0:
            return "must be positive" if low_open else "must be non-negative"
        if not low_open:
            return f"must be at least {low:g}"
    return f"must be in {interval}"


def _declared_bounds(config_cls):
    """Field name -> bounds, from the most derived class that declares them (a subclass that
    only changes a default keeps its base class's bounds)."""
    found = {}
    for cls in config_cls.__mro__:
        for f in getattr(cls, "__dataclass_fields__", {}).values():
            if "bounds" in f.metadata:
                found.setdefault(f.name, f.metadata["bounds"])
    return found


@dataclass
class Config:
    """Base of every command's hyperparameter dataclass."""

    def validate(self):
        """Raise UsageError for a value outside its field's declared `bounds`; subclasses
        extend it with the checks that involve several fields."""
        for name, (low, high, low_open, high_open, interval) in _declared_bounds(type(self)).items():
            value = getattr(self, name)
            if not ((low < value if low_open else low <= value) and (value < high if high_open else value <= high)):
                raise UsageError(f"{_flag(name)} {_bounds_message(low, high, low_open, high_open, interval)}, "
                                 f"got {value}")


SEED_BOUNDS = bounds(f"[0, {2**32 - 1}]", "random seed for initialisation, shuffling and sampling")


@dataclass
class TrainConfig(Config):
    """The hyperparameters every trainer has; models subclass it and add their own.

    `RESUME_MAY_CHANGE`: the fields `--resume` accepts with another value than the run's (`--epochs`
    to train longer); every other field keeps the run's value, and giving another is refused.
    """

    RESUME_MAY_CHANGE: typing.ClassVar[tuple] = ("epochs",)

    epochs: int = field(default=10, metadata=at_least(1, "passes over the training data"))
    batch_size: int = field(default=32, metadata=at_least(1, "global batch size, summed over replicas"))
    lr: float = field(default=0.01, metadata=positive("learning rate"))
    seed: int = field(default=0, metadata=SEED_BOUNDS)


def _parse_ints(text, sep):
    if isinstance(text, (list, tuple)):
        return tuple(int(v) for v in text)
    return tuple(int(v) for v in str(text).lower().split(sep))


def int_list(help=None, **metadata):
    """Field metadata for a comma-separated list of positive integers ("64,32,16" -> (64, 32, 16))."""
    def parse(text):
        values = _parse_ints(text, ",")
        if not values or min(values) < 1:
            raise ValueError
        return values
    return {**metadata, "parse": parse, "metavar": metadata.get("metavar", "N,N,..."),
            "expects": "comma-separated positive integers like 64,32,16", **({"help": help} if help else {})}


def int_pair(help=None, **metadata):
    """Field metadata for a size written HxW or N ("128x96" -> (128, 96), "128" -> (128, 128))."""
    def parse(text):
        values = _parse_ints(text, "x")
        values = values * 2 if len(values) == 1 else values
        if len(values) != 2 or min(values) < 1:
            raise ValueError
        return values
    return {**metadata, "parse": parse, "metavar": metadata.get("metavar", "HxW"), "separator": "x",
            "expects": "a size HxW like 128x128 (or one number for a square)", **({"help": help} if help else {})}


def _format_default(value, separator=","):
    """A default as the user would type it: (64, 32) -> "64,32" (or "128x128" for sizes)."""
    if isinstance(value, tuple):
        return separator.join(str(v) for v in value)
    return value


def _settings(config_cls, values):
    """`name=value, ...` of config field values as the user would type them (the --demo and
    --preset help)."""
    return ", ".join(f"{k}={_format_default(v, _declared_metadata(config_cls, k).get('separator', ','))}"
                     for k, v in values.items())


@dataclass
class Command:
    """One sub-command: `fn(ctx) -> dict | None`; a returned dict is printed as JSON.

    `trains`: takes the config flags plus --devices/--strategy/--resume and gets a new
    run directory. `configurable`: takes the config flags and gets a new run directory
    without training under a strategy (e.g. value iteration). Otherwise the command
    works on an existing run (`--run-dir`, default the newest) and its saved config.
    `reads_data=False` leaves out --data-dir and --demo (e.g. simulated environments).
    """

    fn: typing.Callable
    help: str
    add_arguments: typing.Callable = None
    trains: bool = False
    configurable: bool = False
    reads_data: bool = True

    @property
    def fresh(self):
        return self.trains or self.configurable


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)  # --epoch must not pass for --epochs

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class _RaisingParser(_Parser):
    """The parser of the Python API: a bad option raises `UsageError` instead of exiting."""

    def error(self, message):
        raise UsageError(message)


def _flag(name):
    return "--" + name.replace("_", "-")


def positive_int(text):
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _typed(name, parse, expects):
    def convert(text):
        try:
            return parse(text)
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(f"{_flag(name)} must be {expects}, got {text!r}") from None
    convert.__name__ = name
    return convert


def add_config_arguments(parser, config_cls):
    """Add one flag per dataclass field, defaulting to 'not given' (argparse.SUPPRESS).

    The help shows the field's description, default, allowed range or choices, all from
    the field's declaration, which is also what `Config.validate` checks.
    """
    hints = typing.get_type_hints(config_cls)
    declared = _declared_bounds(config_cls)
    for f in dataclasses.fields(config_cls):
        kind = hints[f.name]
        meta = _declared_metadata(config_cls, f.name)
        options = {"default": argparse.SUPPRESS, "help": meta.get("help", "")}
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        interval = f", in {declared[f.name][4]}" if f.name in declared else ""
        options["help"] += f" (default: {_format_default(default, meta.get('separator', ','))}{interval})"
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif "parse" in meta:
            options["type"] = _typed(f.name, meta["parse"], meta["expects"])
            options["metavar"] = meta["metavar"]
        else:
            options["type"] = kind if kind in (int, float, str) else str
            if "choices" in meta:
                options["choices"] = meta["choices"]
            else:
                options["metavar"] = meta.get("metavar", f.name.upper())
        parser.add_argument(_flag(f.name), **options)


def _declared_metadata(config_cls, name):
    """A field's metadata, from the most derived class that declares any (a subclass that only
    changes a default keeps its base class's help, range and choices)."""
    for cls in config_cls.__mro__:
        f = getattr(cls, "__dataclass_fields__", {}).get(name)
        if f is not None and f.metadata:
            return f.metadata
    return {}


def _parse_saved(config_cls, values):
    """Turn JSON values (lists) back into the typed values of `parse` fields."""
    out = dict(values)
    for f in dataclasses.fields(config_cls):
        parse = _declared_metadata(config_cls, f.name).get("parse")
        if parse is not None and f.name in out and not isinstance(out[f.name], tuple):
            out[f.name] = parse(out[f.name])
    return out


def build_config(config_cls, explicit, demo=None, saved=None, preset=None):
    """Defaults <- demo preset <- named preset <- saved config.json <- explicit flags; then validate."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    values = {}
    for layer in (demo or {}, preset or {}, {k: v for k, v in (saved or {}).items() if k in names}, explicit):
        values.update(layer)
    config = config_cls(**_parse_saved(config_cls, values))
    config.validate()
    return config


class Context:
    """What a command function gets: parsed flags, the config, the run directory, the strategy.

    `saved` is the run's config.json for commands that work on an existing run; its
    recorded data source is then the default for `data_dir` and `demo`.
    """

    def __init__(self, prog, command, args, config, argv=(), saved=None, spec=None):
        self.prog = prog
        self.argv = list(argv)
        self.command = command
        self.spec = spec
        self.args = args
        self.config = config
        self.saved = saved or {}
        self._strategy = None
        self._run = None
        self._warn_if_other_data()

    @property
    def trained_on(self):
        """The data source recorded when the run was trained: {"source": "demo" | "dir" | "default", ...}."""
        return self.saved.get("data") or {}

    @property
    def data_dir(self):
        """`--data-dir`, else (for an existing run) the directory the run was trained on, else None."""
        given = getattr(self.args, "data_dir", None)
        if given is not None or getattr(self.args, "demo", False) or getattr(self.args, "tfds", None):
            return given
        if self.trained_on.get("source") == "dir":
            return Path(self.trained_on["path"])
        return None

    @property
    def demo(self):
        """`--demo`, else (for an existing run without --data-dir) whether it was trained with --demo."""
        if getattr(self.args, "demo", False):
            return True
        return (getattr(self.args, "data_dir", None) is None and not getattr(self.args, "tfds", None)
                and self.trained_on.get("source") == "demo")

    @property
    def tfds(self):
        """The TFDS dataset to read, {"name": "imdb_reviews", "data_dir": str or None}: `--tfds`/`--tfds-dir`,
        else (for an existing run without --data-dir or --demo) the one the run was trained on, else None."""
        given = getattr(self.args, "tfds", None)
        if given:
            tfds_dir = getattr(self.args, "tfds_dir", None)
            return {"name": given, "data_dir": str(Path(tfds_dir).expanduser().resolve()) if tfds_dir else None}
        if (getattr(self.args, "data_dir", None) is None and not getattr(self.args, "demo", False)
                and self.trained_on.get("source") == "tfds"):
            return {"name": self.trained_on["tfds"], "data_dir": self.trained_on.get("data_dir")}
        return None

    def tfds_examples(self, split, batch_size=None):
        """The examples of `split` of the chosen TFDS dataset (`tfds_source.load`: numpy dicts, of arrays of
        `batch_size` examples when given); the split is recorded in config.json's data source."""
        chosen = self.tfds
        examples = tfds_source.load(chosen["name"], split, chosen["data_dir"], batch_size)
        self._tfds_splits = [*getattr(self, "_tfds_splits", []), split]
        return examples

    def data_source(self):
        """What this command reads: {"source": "demo"} / {"source": "dir", "path", "fingerprint"} /
        {"source": "default"} (the dataset's cache, downloaded when missing), plus the
        `datasets` the readers resolved so far (name -> path and fingerprint)."""
        from common.data import fingerprint, resolved_datasets

        if self.tfds is not None:
            source = {"source": "tfds", **tfds_source.describe(self.tfds["name"], self.tfds["data_dir"]),
                      "data_dir": self.tfds["data_dir"], "read": getattr(self, "_tfds_splits", [])}
        elif self.demo:
            source = {"source": "demo"}
        elif self.data_dir is not None:
            path = Path(self.data_dir).expanduser().resolve()
            source = {"source": "dir", "path": str(path), "fingerprint": fingerprint(path)}
        else:
            source = {"source": "default"}
        datasets = {name: {"path": str(path), "fingerprint": fingerprint(path)}
                    for name, path in resolved_datasets().items()}
        return {**source, **({"datasets": datasets} if datasets else {})}

    def _warn_if_other_data(self):
        trained = self.trained_on
        if not trained or not hasattr(self.args, "data_dir"):
            return
        given_dir, given_demo = getattr(self.args, "data_dir", None), getattr(self.args, "demo", False)
        given_tfds = getattr(self.args, "tfds", None)
        if given_dir is None and not given_demo and not given_tfds:
            if trained.get("source") == "dir":
                from common.data import fingerprint

                path = Path(trained["path"])
                if not path.is_dir():
                    raise UsageError(f"the run was trained on {path}, which no longer exists; pass --data-dir")
                if fingerprint(path) != trained.get("fingerprint"):
                    print(f"note: the files in {path} changed since the run was trained on them", file=sys.stderr)
            return
        now = ("--demo data" if given_demo else f"--tfds {tfds_source.dataset_name(given_tfds)}" if given_tfds
               else f"--data-dir {given_dir}")
        before = {"demo": "--demo data", "dir": f"--data-dir {trained.get('path')}",
                  "tfds": f"--tfds {trained.get('tfds')}",
                  "default": "the default dataset"}.get(trained.get("source"), "other data")
        if now != before and not (given_dir is not None and trained.get("source") == "dir"
                                  and Path(given_dir).expanduser().resolve() == Path(trained["path"])):
            print(f"note: the run was trained on {before}; this {self.command} reads {now}", file=sys.stderr)

    @property
    def run_dir(self):
        return self.args.run_dir

    @property
    def strategy(self):
        """The tf.distribute strategy from --strategy/--devices; checks the global batch splits evenly."""
        if self._strategy is None:
            strategy = make_strategy(getattr(self.args, "strategy", "default"), getattr(self.args, "devices", None))
            if hasattr(self.config, "batch_size"):
                per_replica_batch_size(self.config.batch_size, strategy)
            self._strategy = strategy
        return self._strategy

    def run(self):
        """The Run of a train/configurable command, with config.json written (every
        hyperparameter, the command line, the replicas and the data source)."""
        from common.runs import Run

        trains = hasattr(self.args, "strategy")
        chief = is_chief(self.strategy) if trains else True
        run = Run(self.run_dir, resume=getattr(self.args, "resume", False), chief=chief,
                  keep_checkpoints=getattr(self.args, "keep_checkpoints", 1))
        extra = {"module": self.prog, **({"replicas": self.strategy.num_replicas_in_sync} if trains else {})}
        if hasattr(self.args, "data_dir"):
            extra["data"] = self.data_source()
        run.write_config(self.config, command=" ".join(["python -m", self.prog, *self.argv]), **extra)
        self._run = run
        return run

    def restore(self, objects, checkpoint=None):
        """Restore `objects` (a built model, or name -> model/trackable) from this run's newest
        intact checkpoint (or `checkpoint`); returns the checkpoint's epoch.

        When no checkpoint is intact, a command that only reads the run (evaluate, predict, ...)
        takes a lone model's weights from the run's final model.keras instead, saying so in one line.
        """
        from common.runs import Run

        objects = objects if isinstance(objects, dict) else {"model": objects}
        try:
            if checkpoint is None and not runs.checkpoint_dirs(self.run_dir):
                raise NoIntactCheckpoint(f"no checkpoint in {Path(self.run_dir) / runs.CHECKPOINTS}; train first")
            epoch = Run(self.run_dir, resume=True).restore(objects, checkpoint)
        except NoIntactCheckpoint as e:
            saved_model = Path(self.run_dir) / runs.MODEL
            trains = self.spec is not None and self.spec.fresh
            if trains or checkpoint is not None or list(objects) != ["model"] or not saved_model.exists():
                raise
            from common.training import restore_from_saved_model

            epoch = restore_from_saved_model(objects["model"], saved_model, reason=str(e))
        if self._run is not None:
            self._run.commit()
        return epoch

    def finish(self, state, error=None):
        """Record in the run's status.json how this command ended (nothing for a command that wrote no run)."""
        if self._run is not None:
            self._run.finish(state, **({"error": error} if error else {}))

    @property
    def interrupted(self):
        """True when Ctrl-C stopped this command's training early."""
        return self._run is not None and self._run.interrupted


def default_run_root(prog):
    return RUNS_ROOT / prog.rsplit(".", 1)[-1]


def latest_run(prog):
    """The newest completed run directory under runs/<model>/, or None."""
    return runs.newest_run(default_run_root(prog))[0]


def _add_tfds_arguments(parser, tfds, fresh):
    """`--tfds NAME[:CONFIG]` (one of the `tfds` datasets the module reads) and `--tfds-dir DIR`."""
    def name(text):
        if tfds_source.base_name(text) not in tfds:
            raise argparse.ArgumentTypeError(f"reads {', '.join(sorted(tfds))}, got {text!r}")
        return text

    parser.add_argument("--tfds", type=name, metavar="NAME[:CONFIG]",
                        help="read the TFDS-prepared dataset NAME instead of --data-dir, never downloading: "
                             + "; ".join(f"{k} ({v})" for k, v in tfds.items())
                             + ("" if fresh else " (default: what the run was trained on)"))
    parser.add_argument("--tfds-dir", type=Path, metavar="DIR",
                        help="the TFDS data folder `tfds build --data_dir` wrote (default: TFDS's own, "
                             "$TFDS_DATA_DIR or ~/tensorflow_datasets)")


def _check_data_flags(args):
    """At most one of --data-dir, --demo and --tfds; --tfds-dir only with --tfds."""
    given = [flag for flag, value in (("--data-dir", getattr(args, "data_dir", None)),
                                      ("--demo", getattr(args, "demo", False)),
                                      ("--tfds", getattr(args, "tfds", None))) if value]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} name two data sources; give one")
    if getattr(args, "tfds_dir", None) is not None and getattr(args, "tfds", None) is None:
        raise UsageError("--tfds-dir names where TFDS datasets are; pass --tfds NAME with it")


def build_parser(prog, description, config_cls, commands, presets=None, demo=None, parser_class=_Parser, tfds=None):
    """`tfds`: the TFDS datasets the module reads (name -> what it is), offered by `--tfds`/`--tfds-dir`."""
    parser = parser_class(prog=f"python -m {prog}", description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(commands) + "}",
                                parser_class=parser_class)
    for name, cmd in commands.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if cmd.reads_data:
            p.add_argument("--data-dir", type=Path, help="directory holding the dataset's own layout"
                           + ("" if cmd.fresh else " (default: what the run was trained on)"))
        if cmd.reads_data and tfds:
            _add_tfds_arguments(p, tfds, cmd.fresh)
        p.add_argument("--run-dir", type=Path,
                       help=f"run directory (default: new runs/{default_run_root(prog).name}/<time> for train, "
                            "the newest one otherwise)")
        settings = _settings(config_cls, demo or {})
        p.add_argument("--demo", action="store_true",
                       help=("offline: the small generated dataset" if cmd.reads_data else "the quick demo settings")
                            + (f" and {settings}" if settings and cmd.fresh else "")
                            + ("" if cmd.fresh else " (default: what the run was trained on)"))
        if cmd.fresh:
            add_config_arguments(p, config_cls)
            if presets:
                p.add_argument("--preset", choices=sorted(presets),
                               help="named settings applied under explicit flags: " +
                                    "; ".join(f"{k}: {_settings(config_cls, p)}" for k, p in sorted(presets.items())))
        if cmd.trains:
            p.add_argument("--devices", type=positive_int, help="number of replicas (GPUs, or logical CPUs)")
            p.add_argument("--strategy", choices=STRATEGIES, default="auto", help="tf.distribute strategy")
            p.add_argument("--resume", action="store_true", help="continue the run in --run-dir (or the newest)")
            p.add_argument("--keep-checkpoints", type=positive_int, default=1, metavar="N",
                           help="checkpoints a completed run keeps, newest first (default: 1; a run keeps 3 "
                                "while it trains)")
        if cmd.add_arguments is not None:
            cmd.add_arguments(p)
    return parser


def _resolve_run_dir(prog, args, fresh):
    """Fill in `args.run_dir`: a new runs/<model>/<time> for a fresh run, else the newest completed run
    (returns the line naming it, which `main` prints when the command succeeds, so that an error stays one
    line). A failed or unfinished run is used only when named, with a warning."""
    resume = getattr(args, "resume", False)
    if args.run_dir is not None:
        if not fresh:
            runs.read_config(args.run_dir)  # a file or a folder without config.json: one line
            if runs.read_status(args.run_dir)["state"] != "completed":
                described = runs.describe(args.run_dir)
                print(f"warning: {args.run_dir} is {'an' if described[0] in 'aeiou' else 'a'} {described} run; "
                      "using its newest checkpoint",
                      file=sys.stderr)
        return
    if fresh and not resume:
        args.run_dir = default_run_root(prog) / time.strftime("%Y%m%d-%H%M%S")
        return
    root = default_run_root(prog)
    found, skipped = runs.newest_run(root)
    if resume and skipped:  # --resume without --run-dir continues the newest run, finished or not
        found = skipped[0]
    if found is None:
        what = (f"no completed run under {root} ({len(skipped)} failed or unfinished)" if skipped
                else f"no run found under {root}")
        raise UsageError(f"{what}; train first or pass --run-dir")
    args.run_dir = found
    note = f"; skipped {len(skipped)} newer failed or unfinished" if skipped and not resume else ""
    return f"using {found}, the newest {'run' if resume else 'completed run'}{note}"


def _is_chief_task():
    """False on a multi-worker task that does not write the run (`TF_CONFIG`, as `distribute.is_chief`)."""
    try:
        spec = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task, cluster = spec.get("task") or {}, spec.get("cluster") or {}
    except (ValueError, AttributeError):
        return True
    if not task.get("type"):
        return True
    return task["type"] == "chief" or ("chief" not in cluster and task["type"] == "worker"
                                       and int(task.get("index", 0)) == 0)


def _check_new_run_dir(run_dir):
    """Before a fresh run writes anything: `run_dir` must not hold a run, and must be a folder that can be
    written. Returns True when this call created it (removed again if the command fails before using it)."""
    run_dir = Path(run_dir)
    if not _is_chief_task():
        return False
    if (run_dir / "config.json").exists():
        module = runs.module_of(runs.read_config(run_dir))
        raise UsageError(f"{run_dir} already holds a run{f' of {module}' if module else ''}; pass --resume to "
                         "continue it, or choose a new --run-dir")
    created = not run_dir.exists()
    writable_dir(run_dir, "--run-dir")
    return created


def _format_value(value):
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value).lower() \
        if isinstance(value, bool) else str(value)


def _check_module(prog, command, run_dir, saved):
    """The run in `run_dir` was written by this module (its config's `module`), else one line naming the
    module and the command that reads it."""
    module = runs.module_of(saved)
    if module is not None and module != prog:
        raise UsageError(f"{run_dir} was written by {module}; use python -m {module} {command} --run-dir {run_dir}")


def _check_resume(config_cls, args, changed, saved):
    """Before `--resume` writes anything: the flags given (`changed`: name -> value, explicit flags and a
    --preset's values) keep the run's settings except `RESUME_MAY_CHANGE`, there is an epoch left to
    train, and the data is the run's own."""
    run_dir = args.run_dir
    done = runs.epochs_done(run_dir)
    if done == 0:
        raise UsageError(f"no checkpoint in {Path(run_dir) / runs.CHECKPOINTS}: train into it first "
                         "(or start a new run without --resume)")
    may_change = getattr(config_cls, "RESUME_MAY_CHANGE", ("epochs",))
    parsed_saved = _parse_saved(config_cls, {k: v for k, v in saved.items() if k in changed})
    for name, value in changed.items():
        if name in may_change or name not in parsed_saved:
            continue
        before = parsed_saved[name]
        if _format_value(before) != _format_value(value) and not (
                isinstance(before, (int, float)) and isinstance(value, (int, float)) and before == value):
            flag = _flag(name)
            raise UsageError(f"{run_dir} was trained with {flag} {_format_value(before)}; --resume keeps the "
                             f"run's settings (omit {flag}, or start a new run with another --run-dir)")
    epochs = changed.get("epochs", saved.get("epochs"))
    if isinstance(epochs, int):
        if epochs < done:
            raise UsageError(f"{run_dir} has trained {done} epochs already; --epochs {epochs} is fewer "
                             f"(pass --epochs above {done} to train longer)")
        if epochs == done and runs.read_status(run_dir)["state"] == "completed":
            raise UsageError(f"{run_dir} is complete ({done} of {done} epochs); pass --epochs above {done} "
                             "to train longer")
    trained = saved.get("data") or {}
    if not trained or not hasattr(args, "data_dir"):
        return
    given_dir, given_demo, given_tfds = args.data_dir, getattr(args, "demo", False), getattr(args, "tfds", None)
    source = trained.get("source")
    if given_demo and source != "demo" or given_dir is not None and (
            source != "dir" or Path(given_dir).expanduser().resolve() != Path(trained.get("path", ""))) or (
            given_tfds and (source != "tfds" or tfds_source.dataset_name(given_tfds) != trained.get("tfds"))):
        before = {"demo": "--demo data", "dir": f"--data-dir {trained.get('path')}",
                  "tfds": f"--tfds {trained.get('tfds')}"}.get(source, "the default dataset")
        raise UsageError(f"{run_dir} was trained on {before}; --resume continues on the same data "
                         "(omit --data-dir, --demo and --tfds, or start a new run)")
    if source == "dir" and Path(trained["path"]).is_dir():
        from common.data import fingerprint

        if fingerprint(Path(trained["path"])) != trained.get("fingerprint"):
            raise UsageError(f"the files in {trained['path']} changed since {run_dir} was trained on them; "
                             "--resume needs the same data (restore them, or start a new run)")


def print_metrics(metrics):
    """Print metrics as one JSON object on the last line of stdout."""
    print(json.dumps(metrics, default=lambda o: o.item() if hasattr(o, "item") else str(o)), flush=True)


def _calling_module(depth=2):
    """The dotted name of the module whose code called `main` (`python -m` runs it as __main__)."""
    caller = sys._getframe(depth).f_globals
    spec = caller.get("__spec__")
    return spec.name if spec is not None else caller["__name__"]


def main(description, config_cls, commands, demo=None, argv=None, presets=None, prog=None, tfds=None):
    """Parse `argv`, build the context and run the chosen command; return the exit code.

    The program name (`python -m <domain>.<model>`) is `prog`, default the module that calls `main`.
    `demo`: field overrides for `--demo`. `presets`: name -> field overrides for `--preset`. A command
    whose training Ctrl-C stopped prints its JSON with `"interrupted": true` and exits 130. `tfds`: the TFDS
    datasets the module reads (`--tfds`).
    """
    prog = prog or _calling_module()
    parser = build_parser(prog, description, config_cls, commands, presets, demo, tfds=tfds)
    args = parser.parse_args(argv)
    try:
        result, interrupted = execute(prog, config_cls, commands, args, demo, presets,
                                      sys.argv[1:] if argv is None else argv)
    except (DlsuiteError, KeyboardInterrupt) as e:
        return _failed(parser.prog, args.command, e)
    if isinstance(result, dict):
        print_metrics(result)
    return 130 if interrupted else 0


def execute(prog, config_cls, commands, args, demo=None, presets=None, argv=()):
    """Run the parsed command `args` of module `prog` -> (its result, interrupted by Ctrl-C).

    Every check of an existing run comes first; a run this command wrote is marked completed,
    interrupted or failed. Raises the suite's errors (`DlsuiteError`) and KeyboardInterrupt.
    """
    cmd = commands[args.command]
    ctx, created = None, False
    try:
        _check_data_flags(args)
        picked = _resolve_run_dir(prog, args, cmd.fresh)
        resume = getattr(args, "resume", False)
        explicit = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls) if hasattr(args, f.name)}
        preset = (presets or {}).get(getattr(args, "preset", None))
        saved = None
        # every check of an existing run comes before anything is written into it or any data is read
        if not cmd.fresh or resume:
            saved = runs.read_config(args.run_dir)
            _check_module(prog, args.command + (" --resume" if resume else ""), args.run_dir, saved)
        if resume and cmd.trains:  # gp_hpo.hpo's studies check their own --resume
            _check_resume(config_cls, args, {**(preset or {}), **explicit}, saved)
        config = build_config(config_cls, explicit, demo if args.demo else None, saved, preset)
        if cmd.fresh and not resume:
            created = _check_new_run_dir(args.run_dir)
        if cmd.trains:
            configure_devices(args.devices)
        seeding.set_seed(config.seed)
        ctx = Context(prog, args.command, args, config, argv, saved=saved, spec=cmd)
        result = cmd.fn(ctx)
        ctx.finish("interrupted" if ctx.interrupted else "completed")
    except BaseException as e:
        _record_failure(ctx, e, created, args)
        raise
    if picked:
        print(picked, file=sys.stderr)
    if isinstance(result, dict):
        if cmd.fresh:
            result = {**result, "run_dir": str(args.run_dir)}
        if ctx.interrupted:
            result["interrupted"] = True
    return result, ctx.interrupted


def _record_failure(ctx, error, created, args):
    """Mark the run this command wrote as failed (or interrupted); remove a run folder this command
    created and left empty."""
    if ctx is not None:
        interrupted = isinstance(error, KeyboardInterrupt)
        ctx.finish("interrupted" if interrupted else "failed",
                   None if interrupted else str(error) if isinstance(error, DlsuiteError)
                   else f"{type(error).__name__}: {error}")
    if created and args.run_dir.is_dir() and not any(args.run_dir.iterdir()):
        args.run_dir.rmdir()


def _failed(prog, command, error):
    """One line on stderr for a failed (DlsuiteError) or interrupted command; its exit code."""
    if isinstance(error, KeyboardInterrupt):
        print(f"{prog} {command}: interrupted", file=sys.stderr)
        return 130
    print(f"{prog} {command}: error: {error}", file=sys.stderr)
    return error.exit_code


@dataclass
class Tool:
    """One sub-command of a file tool (no run directory, no config): `fn(args) -> dict | None`,
    a returned dict printed as JSON; `add_arguments(parser)` declares its flags, each with a help."""

    fn: typing.Callable
    help: str
    add_arguments: typing.Callable = None


def build_tool_parser(prog, description, tools):
    parser = _Parser(prog=f"python -m {prog}", description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(tools) + "}",
                                parser_class=_Parser)
    for name, tool in tools.items():
        p = sub.add_parser(name, help=tool.help, description=tool.help)
        if tool.add_arguments is not None:
            tool.add_arguments(p)
    return parser


def tool_main(description, tools, argv=None):
    """`main` for a module of file tools (e.g. `nlp.bpe learn|segment`): parse `argv`, run the
    chosen `Tool`, print its JSON; bad input is one line and exit 1/2, as for trainers."""
    prog = _calling_module()
    parser = build_tool_parser(prog, description, tools)
    args = parser.parse_args(argv)
    try:
        result = tools[args.command].fn(args)
        if isinstance(result, dict):
            print_metrics(result)
        return 0
    except (DlsuiteError, KeyboardInterrupt) as e:
        return _failed(parser.prog, args.command, e)


class ModelModule:
    """The module holding a command's model, training and evaluation (`recsys.mf_model` for `recsys.mf`),
    imported with TensorFlow only when a command runs: `--help` and usage errors never wait for it."""

    def __init__(self, name):
        self.name = name

    def __call__(self):
        return importlib.import_module(self.name)

    def command(self, name):
        """A command function `ctx -> dict` that runs the model module's `name`."""
        def run(ctx):
            return getattr(self(), name)(ctx)
        run.__name__ = run.__qualname__ = name
        run.__doc__ = f"`{self.name}.{name}(ctx)`"
        return run

    def forward(self, name):
        """A module `__getattr__` (PEP 562) giving the model module's names through the command module."""
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self(), name)


@dataclass
class Spec:
    """One model module's command line and Python API, declared once.

    `main(argv)` is the command; `api(verb)` the same verb as a Python function returning the result
    dict the command prints, raising the suite's errors (`DlsuiteError`; `UsageError` for a bad option):

        result = mf.train(mf.Config(epochs=2), demo=True, run_dir="runs/mf-api")
        scores = mf.evaluate("runs/mf-api")
        model = mf.load("runs/mf-api")

    A training verb takes a Config and keyword options named as the flags (`demo`, `data_dir`, `run_dir`,
    `resume`, `devices`, any Config field); any other verb takes the run directory first (default: the
    newest completed run) and its flags. The Config's fields that differ from the dataclass defaults are
    given as flags, as are Config fields passed as keywords, so under `demo=True` or a preset the demo's
    or preset's value of a field holds unless it is set: to set a field to its dataclass default there,
    pass it as a keyword (`train(demo=True, batch_size=4)`).
    """

    prog: str
    description: str
    config_cls: type
    commands: dict
    demo: dict = None
    presets: dict = None
    model: ModelModule = None
    tfds: dict = None  # the TFDS datasets the module reads: name -> what it is (`--tfds NAME`)

    def main(self, argv=None):
        return main(self.description, self.config_cls, self.commands, self.demo, argv, self.presets, prog=self.prog,
                    tfds=self.tfds)

    def api(self, verb):
        """`verb` as a Python function (see the class docstring)."""
        fresh = self.commands[verb].fresh

        def call(first=None, /, **options):
            if fresh:
                argv = [verb, *_config_flags(first, self.config_cls), *_option_flags(self._parser(verb), options)]
            else:
                argv = [verb, *_option_flags(self._parser(verb), {"run_dir": first, **options})]
            args = build_parser(self.prog, self.description, self.config_cls, self.commands, self.presets,
                                self.demo, parser_class=_RaisingParser, tfds=self.tfds).parse_args(argv)
            result, _ = execute(self.prog, self.config_cls, self.commands, args, self.demo, self.presets, argv)
            return result

        name = verb.replace("-", "_")
        call.__name__ = call.__qualname__ = name
        call.__doc__ = (f"`python -m {self.prog} {verb}` from Python: "
                        + (f"{name}(config=None, **flags)" if fresh else f"{name}(run_dir=None, **flags)")
                        + f" -> the result dict. {self.commands[verb].help}.")
        return call

    def _parser(self, verb):
        parser = build_parser(self.prog, self.description, self.config_cls, self.commands, self.presets, self.demo,
                              parser_class=_RaisingParser, tfds=self.tfds)
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[verb]

    def load(self, run_dir=None):
        """The trained `keras.Model` of a run (its final model.keras; default: the newest completed run)."""
        if run_dir is None:
            run_dir = latest_run(self.prog)
            if run_dir is None:
                raise UsageError(f"no completed run under {default_run_root(self.prog)}; train first or pass run_dir")
        _check_module(self.prog, "evaluate", run_dir, runs.read_config(run_dir))
        path = Path(run_dir) / runs.MODEL
        if not path.exists():
            raise DlsuiteError(f"{run_dir} has no {runs.MODEL} (the run did not finish); evaluate it with its "
                               "checkpoints, or train a new run")
        if self.model is not None:
            self.model()  # registers the model's classes with Keras
        import keras

        return keras.saving.load_model(path)


def _config_flags(config, config_cls):
    """The flags that give `config` (a `config_cls` or None): its fields that differ from the dataclass
    defaults (values as the user would type them, joined to the flag: `--lr=-1`)."""
    if config is None:
        return []
    if not isinstance(config, config_cls):
        raise UsageError(f"expected a {config_cls.__module__}.{config_cls.__qualname__}, got {type(config).__name__}")
    default = config_cls()
    flags = []
    for f in dataclasses.fields(config_cls):
        value = getattr(config, f.name)
        if value == getattr(default, f.name):
            continue
        if isinstance(value, bool):
            flags.append(_flag(f.name) if value else "--no-" + f.name.replace("_", "-"))
        else:
            separator = _declared_metadata(config_cls, f.name).get("separator", ",")
            flags.append(f"{_flag(f.name)}={_format_default(value, separator)}")
    return flags


def _option_flags(parser, options):
    """Command-line arguments for keyword `options` named as the flags (`data_dir=...` for `--data-dir`) or
    their destinations; a value is joined to its flag (`--x=-0.5`), so a negative number is not a flag."""
    actions = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        actions[action.dest] = action
        for option in action.option_strings:
            if option.startswith("--") and not (isinstance(action, argparse.BooleanOptionalAction)
                                                and option.startswith("--no-")):
                actions.setdefault(option[2:].replace("-", "_"), action)
    flags, positionals = [], []
    for name, value in options.items():
        if value is None:
            continue
        action = actions.get(name)
        if action is None:
            raise UsageError(f"unknown option {name!r}; {parser.prog} takes " + ", ".join(sorted(actions)))
        many = isinstance(value, (list, tuple)) and action.nargs in ("+", "*")
        values = [str(v) for v in value] if many else [_format_default(value) if isinstance(value, tuple)
                                                       else str(value)]
        if not action.option_strings:
            positionals += values
        elif isinstance(action, argparse.BooleanOptionalAction):
            flags.append(action.option_strings[0] if value else action.option_strings[1])
        elif isinstance(action, argparse._StoreTrueAction):
            flags += [action.option_strings[0]] if value else []
        elif many:
            flags += [action.option_strings[0], *values]
        else:
            flags.append(f"{action.option_strings[0]}={values[0]}")
    return [*flags, "--", *positionals] if positionals else flags
