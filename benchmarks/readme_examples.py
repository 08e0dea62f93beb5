"""Run the README's "Try each model offline" commands and compare what they print with the README's comments.

Each line `python -m MODULE ARGS   # {"key": value, ...}  (T s)` is run in order, in one scratch folder (so
`evaluate` reads the run `train` made), and the last JSON line it prints is compared with the keys the comment
shows: numbers within `--rtol` (relative) or `--atol`, lists as prefixes (a comment abridges them), strings
exactly (a `<placeholder>` matches anything); speeds (keys ending `_per_s`) are the machine's, not compared.
Lines that name `PATH/TO/...` files or whose comment is not JSON are skipped.

    python -m benchmarks.readme_examples --check     # exit 1 and one line per difference
    python -m benchmarks.readme_examples --write     # rewrite the comments' values (and times) from this machine

One JSON line per command (what ran, seconds, differences); the times in the README come from `--write` on
the machine it names.
"""
import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import machine

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SECTION = "## Try each model offline"
LINE = re.compile(r"^(?P<command>python -m \S+.*?)\s+#\s*(?P<comment>\{.*\})(?P<rest>.*)$")


def example_lines(text):
    """(line index, command, comment) of each runnable example in the README's offline section."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(SECTION))
    found = []
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("## "):
            break
        match = LINE.match(lines[i])
        if match and "PATH/TO" not in match["command"]:
            found.append((i, match["command"].strip(), match["comment"]))
    return found


def parse_comment(comment):
    """The keys a comment shows, as a dict: `...` elisions dropped (in objects and lists)."""
    text = re.sub(r",\s*\.\.\.\s*,", ",", comment)
    text = re.sub(r"\{\s*\.\.\.\s*,", "{", text)
    text = re.sub(r",\s*\.\.\.\s*(?=[\]}])", "", text)
    return json.loads(text)


def differences(expected, actual, rtol, atol, key=""):
    """Where `actual` (a command's JSON) differs from `expected` (a comment's keys) beyond the tolerance."""
    found = []
    if isinstance(expected, dict):
        for k, v in expected.items():
            if k.endswith("_per_s"):
                continue
            if not isinstance(actual, dict) or k not in actual:
                found.append(f"{key}{k}: missing")
            else:
                found += differences(v, actual[k], rtol, atol, f"{key}{k}.")
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) < len(expected):
            found.append(f"{key[:-1]}: {actual!r} is not a list starting {expected!r}")
        else:
            for j, v in enumerate(expected):
                found += differences(v, actual[j], rtol, atol, f"{key}{j}.")
    elif isinstance(expected, bool) or isinstance(expected, str):
        if isinstance(expected, str) and "<" in expected:
            pattern = re.escape(expected)
            pattern = re.sub(r"<[^>]*>", ".+", pattern.replace(r"\<", "<").replace(r"\>", ">"))
            if not re.fullmatch(pattern, str(actual)):
                found.append(f"{key[:-1]}: {actual!r} does not match {expected!r}")
        elif expected != actual:
            found.append(f"{key[:-1]}: {actual!r}, README {expected!r}")
    elif isinstance(expected, (int, float)):
        if not isinstance(actual, (int, float)) or abs(actual - expected) > max(atol, rtol * abs(expected)):
            found.append(f"{key[:-1]}: {actual!r}, README {expected!r}")
    return found


def _decimals(number_text):
    return len(number_text.split(".")[1]) if "." in number_text and "e" not in number_text.lower() else 0


def rewrite_comment(comment, actual):
    """The comment with each shown number replaced by `actual`'s, at the comment's precision."""
    def replace(match):
        key, number = match["key"], match["number"]
        value = actual.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return match[0]
        if "e" in number.lower():
            text = f"{value:.1e}"
        elif _decimals(number):
            text = f"{value:.{_decimals(number)}f}"
        else:
            text = str(round(value))
        return f'"{key}": {text}'
    return re.sub(r'"(?P<key>[a-z_0-9]+)":\s*(?P<number>-?[0-9.]+(?:e-?[0-9]+)?)(?=[,}])', replace, comment)


def run(command, cwd):
    """(last JSON line of `command` as a dict or None, seconds, stderr tail)."""
    argv = shlex.split(command)
    tic = time.perf_counter()
    out = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - tic
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines and out.returncode == 0 else None), seconds, out.stderr[-500:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 when a command's output differs from its comment")
    mode.add_argument("--write", action="store_true", help="rewrite the comments' numbers and times")
    parser.add_argument("--rtol", type=float, default=0.05, help="relative tolerance for numbers (default 0.05)")
    parser.add_argument("--atol", type=float, default=0.01, help="absolute tolerance for numbers (default 0.01)")
    parser.add_argument("--only", help="only commands containing this text (others are still run if earlier)")
    args = parser.parse_args(argv)
    text = README.read_text()
    lines = text.splitlines()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for index, command, comment in example_lines(text):
            actual, seconds, err = run(command, tmp)
            found = ["the command failed: " + err.strip().splitlines()[-1] if err.strip() else "no JSON"] \
                if actual is None else differences(parse_comment(comment), actual, args.rtol, args.atol)
            failed += bool(found)
            if args.only is None or args.only in command:
                print(json.dumps({"what": command, "seconds": round(seconds, 1), "differences": found,
                                  "machine": machine()}), flush=True)
            if args.write and actual is not None:
                line = lines[index].replace(comment, rewrite_comment(comment, actual))
                line = re.sub(r"\((\d+) s\)", f"({round(seconds)} s)", line)
                lines[index] = line
    if args.write:
        README.write_text("\n".join(lines) + "\n")
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
