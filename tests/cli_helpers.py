"""Shared test helpers: run a module's `main(argv)` in-process and read its JSON line; 1 vs 2 replicas."""
import json


def run(main, argv, capsys):
    """Return (exit code, metrics dict from the last stdout line or None, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return code, (json.loads(lines[-1]) if lines else None), err


def one_replica_vs_two(main, argv, capsys, command="train"):
    """Run the training `command` once on 1 device and once mirrored over 2 logical CPUs;
    return both metric dicts."""
    code1, single, err1 = run(main, [command, *argv, "--devices", 1, "--run-dir", "single"], capsys)
    assert code1 == 0, err1
    code2, mirrored, err2 = run(main, [command, *argv, "--devices", 2, "--strategy", "mirrored",
                                       "--run-dir", "mirrored"], capsys)
    assert code2 == 0, err2
    return single, mirrored
