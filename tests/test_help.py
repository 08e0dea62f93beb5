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
