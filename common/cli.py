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


@dataclass
class TrainConfig(Config):
    """The hyperparameters every trainer has; models subclass it and add their own."""

    epochs: int = field(default=10, metadata=at_least(1))
    batch_size: int = field(default=32, metadata=at_least(1))
    lr: float = field(default=0.01, metadata=positive())
    seed: int = 0


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


def add_config_arguments(parser, config_cls):
    """Add one flag per dataclass field, defaulting to 'not given' (argparse.SUPPRESS)."""
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        kind = hints[f.name]
        options = {"default": argparse.SUPPRESS, "help": f.metadata.get("help", "")}
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        interval = f", in {f.metadata['bounds'][4]}" if "bounds" in f.metadata else ""
        options["help"] += f" (default: {default}{interval})"
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = kind if kind in (int, float, str) else str
            if "choices" in f.metadata:
                options["choices"] = f.metadata["choices"]
            options["metavar"] = f.metadata.get("metavar", f.name.upper())
        parser.add_argument(_flag(f.name), **options)


def build_config(config_cls, explicit, demo=None, saved=None, preset=None):
    """Defaults <- demo preset <- named preset <- saved config.json <- explicit flags; then validate."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    values = {}
    for layer in (demo or {}, preset or {}, {k: v for k, v in (saved or {}).items() if k in names}, explicit):
        values.update(layer)
    config = config_cls(**values)
    config.validate()
    return config


class Context:
    """What a command function gets: parsed flags, the config, the run directory, the strategy."""

    def __init__(self, prog, command, args, config, argv=()):
        self.prog = prog
        self.argv = list(argv)
        self.command = command
        self.args = args
        self.config = config
        self._strategy = None

    @property
    def data_dir(self):
        return getattr(self.args, "data_dir", None)

    @property
    def demo(self):
        return getattr(self.args, "demo", False)

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
        """The Run of a train/configurable command, with config.json written."""
        from common.training import Run

        trains = hasattr(self.args, "strategy")
        chief = is_chief(self.strategy) if trains else True
        run = Run(self.run_dir, resume=getattr(self.args, "resume", False), chief=chief)
        extra = {"replicas": self.strategy.num_replicas_in_sync} if trains else {}
        run.write_config(self.config, command=" ".join(["python -m", self.prog, *self.argv]), **extra)
        return run


def default_run_root(prog):
    return RUNS_ROOT / prog.rsplit(".", 1)[-1]


def latest_run(prog):
    """The newest run directory under runs/<model>/, or None."""
    root = default_run_root(prog)
    runs = sorted(p for p in root.glob("*") if (p / "config.json").exists()) if root.is_dir() else []
    return runs[-1] if runs else None


def build_parser(prog, description, config_cls, commands, presets=None):
    parser = _Parser(prog=f"python -m {prog}", description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(commands) + "}",
                                parser_class=_Parser)
    for name, cmd in commands.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if cmd.reads_data:
            p.add_argument("--data-dir", type=Path, help="directory holding the dataset's own layout")
        p.add_argument("--run-dir", type=Path,
                       help=f"run directory (default: new runs/{default_run_root(prog).name}/<time> for train, "
                            "the newest one otherwise)")
        p.add_argument("--demo", action="store_true",
                       help="use the demo preset" + (" on the small offline generated dataset" if cmd.reads_data else ""))
        if cmd.fresh:
            add_config_arguments(p, config_cls)
            if presets:
                p.add_argument("--preset", choices=sorted(presets),
                               help="named settings applied under explicit flags: " +
                                    "; ".join(f"{k}: {', '.join(f'{n}={v}' for n, v in p.items())}"
                                              for k, p in sorted(presets.items())))
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


def main(prog, description, config_cls, commands, demo=None, argv=None, presets=None):
    """Parse `argv`, build the context and run the chosen command; return the exit code.

    `demo`: field overrides for `--demo`. `presets`: name -> field overrides for `--preset`.
    """
    parser = build_parser(prog, description, config_cls, commands, presets)
    args = parser.parse_args(argv)
    cmd = commands[args.command]
    try:
        _resolve_run_dir(prog, args, cmd.fresh)
        explicit = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls) if hasattr(args, f.name)}
        saved = None
        if not cmd.fresh or getattr(args, "resume", False):
            path = Path(args.run_dir) / "config.json"
            if not path.exists():
                raise UsageError(f"{args.run_dir} is not a run directory (no config.json); pass the --run-dir of a train run")
            saved = json.loads(path.read_text())
        preset = (presets or {}).get(getattr(args, "preset", None))
        config = build_config(config_cls, explicit, demo if args.demo else None, saved, preset)
        if cmd.trains:
            configure_devices(args.devices)
        from common.training import set_seed

        set_seed(config.seed)
        argv = sys.argv[1:] if argv is None else argv
        result = cmd.fn(Context(prog, args.command, args, config, argv))
        if isinstance(result, dict):
            print_metrics(result)
        return 0
    except DlsuiteError as e:
        print(f"{parser.prog} {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted", file=sys.stderr)
        return 130


def entry(prog, description, config_cls, commands, demo=None, presets=None):
    """`sys.exit(main(...))` for a module's `if __name__ == "__main__":` block."""
    sys.exit(main(prog, description, config_cls, commands, demo=demo, presets=presets))
