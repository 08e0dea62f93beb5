"""Optional dependencies that only one domain needs, installed as pip extras.

`require("gpytorch", "gp")` returns the imported module, or stops the command with one
line naming the `pip install` that brings it (exit 1).
"""
import importlib

from common.errors import DlsuiteError


def require(module, extra):
    """Import `module` (a dotted name) or raise `DlsuiteError` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DlsuiteError(f"{module.split('.')[0]} is not installed ({e}); it comes with the {extra!r} extra: "
                           f"pip install -e \".[{extra}]\"") from None
