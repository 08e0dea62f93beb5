"""Run every benchmark script (or those whose name contains a pattern), one JSON line per measurement.

    python -m benchmarks            # all
    python -m benchmarks ssd rl     # names containing 'ssd' or 'rl'
"""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(patterns):
    scripts = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in ("__init__", "__main__", "harness"))
    chosen = [s for s in scripts if not patterns or any(pat in s for pat in patterns)]
    if not chosen:
        sys.exit(f"no benchmark matches {' '.join(patterns)}; available: {', '.join(scripts)}")
    failed = []
    for name in chosen:
        print(f"# {name}", file=sys.stderr, flush=True)
        if subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], cwd=HERE.parent).returncode:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main(sys.argv[1:])
