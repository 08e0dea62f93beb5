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
import json
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

from common.distribute import STRATEGIES, configure_devices, is_chief, make_strategy, per_replica_batch_size
from common.errors import DlsuiteError, UsageError

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
    """The hyperparameters every trainer has; models subclass it and add their own."""

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

    def __init__(self, prog, command, args, config, argv=(), saved=None):
        self.prog = prog
        self.argv = list(argv)
        self.command = command
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
        if given is not None or getattr(self.args, "demo", False):
            return given
        if self.trained_on.get("source") == "dir":
            return Path(self.trained_on["path"])
        return None

    @property
    def demo(self):
        """`--demo`, else (for an existing run without --data-dir) whether it was trained with --demo."""
        if getattr(self.args, "demo", False):
            return True
        return getattr(self.args, "data_dir", None) is None and self.trained_on.get("source") == "demo"

    def data_source(self):
        """What this command reads: {"source": "demo"} / {"source": "dir", "path", "fingerprint"} /
        {"source": "default"} (the dataset's cache, downloaded when missing), plus the
        `datasets` the readers resolved so far (name -> path and fingerprint)."""
        from common.data import fingerprint, resolved_datasets

        if self.demo:
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
        if given_dir is None and not given_demo:
            if trained.get("source") == "dir":
                from common.data import fingerprint

                path = Path(trained["path"])
                if not path.is_dir():
                    raise UsageError(f"the run was trained on {path}, which no longer exists; pass --data-dir")
                if fingerprint(path) != trained.get("fingerprint"):
                    print(f"note: the files in {path} changed since the run was trained on them", file=sys.stderr)
            return
        now = "--demo data" if given_demo else f"--data-dir {given_dir}"
        before = {"demo": "--demo data", "dir": f"--data-dir {trained.get('path')}",
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
        from common.training import Run

        trains = hasattr(self.args, "strategy")
        chief = is_chief(self.strategy) if trains else True
        run = Run(self.run_dir, resume=getattr(self.args, "resume", False), chief=chief)
        extra = {"replicas": self.strategy.num_replicas_in_sync} if trains else {}
        if hasattr(self.args, "data_dir"):
            extra["data"] = self.data_source()
        run.write_config(self.config, command=" ".join(["python -m", self.prog, *self.argv]), **extra)
        self._run = run
        return run

    def restore(self, objects, checkpoint=None):
        """Restore `objects` (a built model, or name -> model/trackable) from this run's newest
        intact checkpoint (or `checkpoint`); returns the checkpoint's epoch."""
        from common.training import Run

        objects = objects if isinstance(objects, dict) else {"model": objects}
        return Run(self.run_dir, resume=True).restore(objects, checkpoint)

    @property
    def interrupted(self):
        """True when Ctrl-C stopped this command's training early."""
        return self._run is not None and self._run.interrupted


def default_run_root(prog):
    return RUNS_ROOT / prog.rsplit(".", 1)[-1]


def latest_run(prog):
    """The newest run directory under runs/<model>/, or None."""
    root = default_run_root(prog)
    runs = sorted(p for p in root.glob("*") if (p / "config.json").exists()) if root.is_dir() else []
    return runs[-1] if runs else None


def build_parser(prog, description, config_cls, commands, presets=None, demo=None):
    parser = _Parser(prog=f"python -m {prog}", description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(commands) + "}",
                                parser_class=_Parser)
    for name, cmd in commands.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if cmd.reads_data:
            p.add_argument("--data-dir", type=Path, help="directory holding the dataset's own layout"
                           + ("" if cmd.fresh else " (default: what the run was trained on)"))
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
        if cmd.add_arguments is not None:
            cmd.add_arguments(p)
    return parser


def _resolve_run_dir(prog, args, fresh):
    if args.run_dir is not None:
        return
    if fresh and not getattr(args, "resume", False):
        args.run_dir = default_run_root(prog) / time.strftime("%Y%m%d-%H%M%S")
        return
    args.run_dir = latest_run(prog)
    if args.run_dir is None:
        raise UsageError(f"no run found under {default_run_root(prog)}; train first or pass --run-dir")


def print_metrics(metrics):
    """Print metrics as one JSON object on the last line of stdout."""
    print(json.dumps(metrics, default=lambda o: o.item() if hasattr(o, "item") else str(o)), flush=True)


def _calling_module(depth=2):
    """The dotted name of the module whose code called `main` (`python -m` runs it as __main__)."""
    caller = sys._getframe(depth).f_globals
    spec = caller.get("__spec__")
    return spec.name if spec is not None else caller["__name__"]


def main(description, config_cls, commands, demo=None, argv=None, presets=None):
    """Parse `argv`, build the context and run the chosen command; return the exit code.

    The program name (`python -m <domain>.<model>`) is the module that calls `main`. `demo`: field overrides for `--demo`. `presets`: name -> field overrides
    for `--preset`. A command whose training Ctrl-C stopped prints its JSON with
    `"interrupted": true` and exits 130.
    """
    prog = _calling_module()
    parser = build_parser(prog, description, config_cls, commands, presets, demo)
    args = parser.parse_args(argv)
    cmd = commands[args.command]
    try:
        _resolve_run_dir(prog, args, cmd.fresh)
        explicit = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls) if hasattr(args, f.name)}
        saved = None
        if not cmd.fresh or getattr(args, "resume", False):
            from common.training import read_config

            saved = read_config(args.run_dir)
        preset = (presets or {}).get(getattr(args, "preset", None))
        config = build_config(config_cls, explicit, demo if args.demo else None, saved, preset)
        if cmd.trains:
            configure_devices(args.devices)
        from common.training import set_seed

        set_seed(config.seed)
        argv = sys.argv[1:] if argv is None else argv
        ctx = Context(prog, args.command, args, config, argv, saved=saved)
        result = cmd.fn(ctx)
        if isinstance(result, dict):
            if cmd.fresh:
                result = {**result, "run_dir": str(args.run_dir)}
            if ctx.interrupted:
                result["interrupted"] = True
            print_metrics(result)
        return 130 if ctx.interrupted else 0
    except (DlsuiteError, KeyboardInterrupt) as e:
        return _failed(parser.prog, args.command, e)


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
