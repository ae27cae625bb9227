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

from auditor.errors import UserError

ENV = "AUDIT_PLUGINS"
GROUP = "audit.plugins"


def plugin_names() -> list[str]:
    return [name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()]


def load_plugins() -> None:
    """Import every plug-in. Each registry's package imports its built-in parts first (a
    plug-in imports `methods.base` and so on), so built-ins are registered before plug-ins."""
    for name in plugin_names():
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise UserError(f"{ENV}: cannot import plug-in {name!r} ({err})") from None
    for point in entry_points(group=GROUP):
        try:
            point.load()
        except ImportError as err:
            raise UserError(
                f"entry point {point.value!r} ({GROUP}): cannot import it ({err})"
            ) from None
