"""Plug-ins: modules that register methods (`methods.base.register_method`), detectors
(`auditor.detectors.registry.detector`) or dataset kinds (`auditor.datasets.kinds`) from
outside this package. `audit` imports, before it reads any option:

- every module named in the environment variable AUDIT_PLUGINS (comma-separated, importable
  from sys.path, e.g. `AUDIT_PLUGINS=my_lab.audit_methods`), and
- every entry point of the group `audit.plugins` of the installed packages.

Processes `audit run --nproc` starts inherit the variable, so they load the same plug-ins.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from auditor.errors import UserError, first_line

ENV = "AUDIT_PLUGINS"
GROUP = "audit.plugins"


def plugin_names() -> list[str]:
    return [name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()]


def load_plugins() -> None:
    """Import every plug-in. Each registry's package imports its built-in parts first (a
    plug-in imports `methods.base` and so on), so built-ins are registered before plug-ins.
    A plug-in that cannot be imported, fails while importing (a syntax error, an exception) or
    registers a name already taken (the registries raise ValueError) is refused, naming it and
    the error's first line: the plug-in is the user's to fix, not a bug of `audit`."""
    for name in plugin_names():
        try:
            importlib.import_module(name)
        except Exception as err:
            raise UserError(
                f"{ENV}: cannot import plug-in {name!r} ({first_line(err)}): fix it, or "
                f"remove it from {ENV}"
            ) from None
    for point in entry_points(group=GROUP):
        try:
            point.load()
        except Exception as err:
            raise UserError(
                f"entry point {point.value!r} ({GROUP}): cannot import it ({first_line(err)}): "
                "fix it, or uninstall its package"
            ) from None
