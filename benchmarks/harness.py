"""Benchmark convention: one JSON line per measurement.

Each line: {"what", "unit", "rate" (units per second), "seconds", "count",
"peak_rss_mb", "machine", plus any extra fields}. Use `measure` for a callable run
repeatedly after warm-up; compare alternatives as ratios in the same run.
"""
import json
import os
import platform
import resource
import sys
import time


def machine():
    """A short description of the machine the numbers came from."""
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version()}


def peak_rss_mb():
    """Peak resident memory of this process so far, in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def report(what, unit, count, seconds, **extra):
    """Print and return one measurement line: `count` units in `seconds`."""
    line = {"what": what, "unit": unit, "rate": round(count / seconds, 3), "seconds": round(seconds, 4),
            "count": count, "peak_rss_mb": peak_rss_mb(), "machine": machine(), **extra}
    print(json.dumps(line), flush=True)
    return line


def measure(what, fn, count_per_call, unit, repeat=3, warmup=1, **extra):
    """Time `fn()` `repeat` times after `warmup` calls; report the best rate."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        tic = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - tic)
    return report(what, unit, count_per_call, best, **extra)


if __name__ == "__main__":
    sys.exit("import this module from a benchmark script; see benchmarks/README.md")
