"""The import graph: no circles between the suite's modules (imports inside functions count too), and the
commands' light modules load without TensorFlow (a command's --help and usage errors never wait for it)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "vision", "nlp", "recsys", "rl", "gan", "gp_hpo", "benchmarks")


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _resolve(name, modules):
    """The suite's module that `import name` loads (itself, or the package holding it), or None."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph():
    """Module -> the suite's modules it imports anywhere in its code (relative imports resolved)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in map(lambda t: _resolve(t, modules), targets) if t and t != name}
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_loop():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_suite_has_no_import_circles():
    graph = import_graph()
    assert "common.cli" in graph and "common.runs" in graph["common.cli"]  # the walk sees the suite's imports
    assert cycles(graph) == []


HEAVY = ("tensorflow", "keras", "keras_hub", "torch", "gpytorch")


def _loaded_heavy(modules):
    """The heavy libraries that importing `modules` (in a fresh process) loads."""
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            f"print(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_the_check_sees_a_heavy_import():
    assert _loaded_heavy(["common.training"]) == ["keras", "tensorflow"]


def test_the_spine_and_the_gp_and_hpo_load_without_tensorflow():
    assert _loaded_heavy(["common", "common.cli", "common.runs", "common.data", "common.distribute",
                          "gp_hpo.gp", "gp_hpo.hpo"]) == []


def _entry_points():
    from benchmarks.startup import entry_points

    return entry_points()


@pytest.mark.parametrize("module", _entry_points())
def test_help_and_usage_errors_answer_before_tensorflow_loads(module):
    """`--help`, an unknown flag and (for a command that takes a config) a value out of range answer with
    exit codes 0, 2, 2 without loading TensorFlow, Keras, torch, gymnasium, matplotlib, scikit-learn or
    pandas: a command module imports its model module only to run."""
    heavy = {*HEAVY, "gymnasium", "matplotlib", "sklearn", "pandas"}
    script = (f"import contextlib, dataclasses, io, sys, {module} as command\n"
              "verbs = vars(command).get('COMMANDS') or vars(command).get('TOOLS')\n"
              "first = next(iter(verbs)) if verbs else None\n"
              "calls = [['--help'], [first, '--nope'] if first else ['--nope']]\n"
              "spec = (vars(command).get('COMMANDS') or {}).get(first)\n"
              "if spec is not None and spec.fresh and 'seed' in {f.name for f in dataclasses.fields(command.Config)}:\n"
              "    calls.append([first, '--seed', '-1'])\n"
              "codes = []\n"
              "for argv in calls:\n"
              "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
              "        try:\n"
              "            codes.append(command.main(argv))\n"
              "        except SystemExit as e:\n"
              "            codes.append(e.code)\n"
              f"print(codes[:3] == [0, 2, 2][:len(codes)], sorted({heavy!r} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "True []", out.stdout + out.stderr
