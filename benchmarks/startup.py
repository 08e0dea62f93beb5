"""How long a command takes to answer when it has nothing to compute: `--help`, a usage error, and
`gp_hpo.gp fit` on the book's data, each as a whole `python -m` process (median of several runs).

Targets (#29, idle machine): --help and a usage error of any command at most 1 s; `gp_hpo.gp fit` at most
2 s in all. One JSON line per command and measurement, with `within_target`.

    python -m benchmarks.startup [--runs 5] [--only NAME]
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import machine

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("vision", "nlp", "recsys", "rl", "gan", "gp_hpo")


def entry_points():
    """Every `python -m` module of the domains (a file that runs `main` as __main__, or a package's __main__.py)."""
    found = []
    for domain in DOMAINS:
        for path in sorted((ROOT / domain).rglob("*.py")):
            if 'if __name__ == "__main__":' not in path.read_text():
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    return found


def timed(argv, runs, cwd=ROOT):
    """(median seconds, exit code) of `python argv` as a process, `runs` times."""
    times, code = [], None
    for _ in range(runs):
        tic = time.perf_counter()
        code = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True).returncode
        times.append(time.perf_counter() - tic)
    return statistics.median(times), code


def line(what, seconds, target, code, runs):
    import json

    print(json.dumps({"what": what, "unit": "s", "seconds": round(seconds, 3), "target_s": target,
                      "within_target": seconds <= target, "exit_code": code, "runs": runs, "machine": machine()}),
          flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="processes per measurement (median)")
    parser.add_argument("--only", help="only entry points whose name contains this")
    args = parser.parse_args(argv)
    for module in entry_points():
        if args.only and args.only not in module:
            continue
        seconds, code = timed(["-m", module, "--help"], args.runs)
        line(f"python -m {module} --help", seconds, 1.0, code, args.runs)
        seconds, code = timed(["-m", module, "--no-such-flag"], args.runs)
        line(f"python -m {module} --no-such-flag (usage error)", seconds, 1.0, code, args.runs)
    if not args.only or args.only in "gp_hpo.gp":
        with tempfile.TemporaryDirectory() as tmp:
            times = []
            for i in range(args.runs):
                seconds, code = timed(["-m", "gp_hpo.gp", "fit", "--run-dir", f"{tmp}/run{i}"], 1, cwd=tmp)
                times.append(seconds)
            line("python -m gp_hpo.gp fit (the book's data)", statistics.median(times), 2.0, code, args.runs)


if __name__ == "__main__":
    main()
