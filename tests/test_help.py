"""Every command of every model module: each flag has a description, and --help shows choices and ranges."""
import argparse
import importlib
import pkgutil

import pytest

from common import cli

DOMAINS = ("vision", "recsys", "rl", "gan", "nlp", "gp_hpo")


def _modules_with(*names):
    """Every module of every domain that defines all of `names`."""
    found = []
    for domain in DOMAINS:
        package = importlib.import_module(domain)
        for info in pkgutil.walk_packages(package.__path__, f"{domain}."):
            module = importlib.import_module(info.name)
            if all(hasattr(module, n) for n in names):
                found.append(info.name)
    return found


def _command_modules():
    return _modules_with("COMMANDS", "Config", "main")


def _assert_described(name, parser):
    """Every flag of every sub-command of `parser` has a description; choices are shown."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, sub in subparsers.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = action.option_strings[0] if action.option_strings else action.dest
            description = (action.help or "").split(" (default")[0].strip()
            assert description, f"{name} {command} {flag} has no description"
            if action.choices is not None:
                assert action.metavar is None, f"{name} {command} {flag} hides its choices behind a metavar"


@pytest.mark.parametrize("name", _command_modules())
def test_every_flag_is_described(name):
    module = importlib.import_module(name)
    _assert_described(name, cli.build_parser(name, "", module.Config, module.COMMANDS,
                                             getattr(module, "PRESETS", None), getattr(module, "DEMO", None)))


def _tool_modules():
    return _modules_with("TOOLS", "main")


def test_tool_modules_are_found():
    assert {"nlp.bpe", "nlp.embeddings", "vision.resnet"} <= set(_tool_modules())


@pytest.mark.parametrize("name", _tool_modules())
def test_every_tool_flag_is_described(name):
    _assert_described(name, cli.build_tool_parser(name, "", importlib.import_module(name).TOOLS))


def test_demo_and_preset_help_show_sizes_as_typed():
    # --crop takes 320x480; the --demo and --preset help must not show a tuple or 320,480
    module = importlib.import_module("vision.fcn")
    parser = cli.build_parser("vision.fcn", "", module.Config, module.COMMANDS, module.PRESETS, module.DEMO)
    train = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    helps = {a.option_strings[0]: a.help for a in train._actions if a.option_strings}
    assert "crop=128x128" in helps["--demo"] and "crop=320x480" in helps["--preset"]


# --- the Python API: one function per command, the same verbs everywhere --------------------------
CONTRACT = ("train", "evaluate", "predict")
# verbs a module may have besides the contract's: word-vector queries, BERT's encoder outputs, a GP's plots
OTHER_VERBS = {"similar", "analogy", "encode", "plot", "export"}
# the field's own word replacing a contract verb (a module's VERBS), and the modules where the field uses it
DOMAIN_VERBS = {"pretrain": ("nlp.bert",), "generate": ("gan.gan", "gan.dcgan"), "fit": ("gp_hpo.gp",),
                "run": ("gp_hpo.hpo",)}
# runs whose trained model answers queries by verbs of their own, not `predict`
QUERIED_OTHERWISE = {"nlp.word2vec": ("similar", "analogy"), "nlp.glove": ("similar", "analogy"),
                     "nlp.bert": ("encode",)}

def _verbs(module):
    """The module's contract verb -> the verb its command line and API use."""
    return {verb: getattr(module, "VERBS", {}).get(verb, verb) for verb in CONTRACT}


@pytest.mark.parametrize("name", _command_modules())
def test_every_command_module_is_a_python_api(name):
    module = importlib.import_module(name)
    spec = getattr(module, "SPEC", None)
    assert isinstance(spec, cli.Spec), f"{name} has no SPEC (cli.Spec)"
    assert spec.prog == name and spec.commands is module.COMMANDS and spec.config_cls is module.Config
    assert module.main == spec.main or getattr(module.main, "__module__", None) == name
    for verb in module.COMMANDS:
        function = getattr(module, verb.replace("-", "_"), None)
        assert callable(function) and function.__name__ == verb.replace("-", "_"), \
            f"{name} has no Python function {verb.replace('-', '_')} for its {verb} command"
    if spec.model is not None:  # a Keras model: the run's model.keras
        assert module.load == spec.load, f"{name} saves a model but has no load(run_dir)"


@pytest.mark.parametrize("name", _command_modules())
def test_the_verbs_are_the_contracts_or_declared_domain_words(name):
    module = importlib.import_module(name)
    declared = getattr(module, "VERBS", {})
    for verb, word in declared.items():
        assert verb in CONTRACT and name in DOMAIN_VERBS.get(word, ()), \
            f"{name} declares {word!r} for {verb!r}; the fields' own words are {DOMAIN_VERBS}"
        assert verb not in module.COMMANDS and word in module.COMMANDS, f"{name}: {word} replaces {verb}"
    verbs = _verbs(module)
    allowed = set(verbs.values()) | OTHER_VERBS
    assert set(module.COMMANDS) <= allowed, f"{name} has verbs outside the contract: {set(module.COMMANDS) - allowed}"
    training = [verb for verb, cmd in module.COMMANDS.items() if cmd.fresh]
    assert training == [verbs["train"]], f"{name} trains with {training}, declared {verbs['train']!r}"


@pytest.mark.parametrize("name", _command_modules())
def test_a_trained_model_answers_queries_with_predict(name):
    module = importlib.import_module(name)
    spec = getattr(module, "SPEC", None)
    if spec is None or spec.model is None:  # no Keras model: a study, a table, a GP
        return
    query = _verbs(module)["predict"]
    if name in QUERIED_OTHERWISE:
        assert set(QUERIED_OTHERWISE[name]) <= set(module.COMMANDS), name
    else:
        assert query in module.COMMANDS, f"{name} saves a model but has no {query} command"


def test_the_exceptions_name_command_modules():
    modules = set(_command_modules())
    assert set(QUERIED_OTHERWISE) <= modules
    assert {name for names in DOMAIN_VERBS.values() for name in names} <= modules
    assert "predict" in importlib.import_module("gp_hpo.gp").COMMANDS  # a fitted GP answers queries, without Keras
