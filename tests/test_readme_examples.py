"""benchmarks.readme_examples: the README's example comments parse, and differences and rewrites are exact."""
from benchmarks.readme_examples import README, differences, example_lines, parse_comment, rewrite_comment


def test_every_readme_example_comment_parses():
    examples = example_lines(README.read_text())
    assert len(examples) >= 25 and all(command.startswith("python -m ") for _, command, _ in examples)
    for _, _, comment in examples:
        assert isinstance(parse_comment(comment), dict)


def test_elisions_are_dropped():
    assert parse_comment('{..., "a": 1, ..., "b": [1, 2, ...], ...}') == {"a": 1, "b": [1, 2]}


def test_differences_respect_the_tolerance_prefixes_and_placeholders():
    shown = parse_comment('{"auc": 0.90, "items": [3, 1, ...], "run_dir": "runs/mf/<time>", "n": 10}')
    assert differences(shown, {"auc": 0.93, "items": [3, 1, 7], "run_dir": "runs/mf/2026", "n": 10}, 0.05, 0.01) == []
    assert differences(shown, {"auc": 0.96, "items": [3, 2], "run_dir": "elsewhere", "n": 11}, 0.05, 0.01) == [
        "auc: 0.96, README 0.9", "items.1: 2, README 1", "run_dir: 'elsewhere' does not match 'runs/mf/<time>'",
        "n: 11, README 10"]
    assert differences({"x": 1.0}, {}, 0.05, 0.01) == ["x: missing"]
    assert differences({"tokens_per_s": 1000}, {"tokens_per_s": 2000}, 0.05, 0.01) == []  # the machine's speed


def test_rewrite_keeps_the_comment_precision():
    comment = '{"map50": 0.884, "floor": 0.020, "err": 1.1e-16, "steps": 3000, "label": "a", ...}'
    assert rewrite_comment(comment, {"map50": 0.9016, "floor": 0.0214, "err": 3.31e-17, "steps": 3012}) == \
        '{"map50": 0.902, "floor": 0.021, "err": 3.3e-17, "steps": 3012, "label": "a", ...}'
