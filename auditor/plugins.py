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


def load_plugins() -> list[str]:
    """Import the built-in registries, then every plug-in; returns the plug-ins' names."""
    import auditor.datasets  # noqa: F401  (the built-in dataset kinds)
    import auditor.detectors  # noqa: F401  (the built-in detectors)
    import methods  # noqa: F401  (the built-in methods)

    loaded = []
    for name in plugin_names():
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise UserError(f"{ENV}: cannot import plug-in {name!r} ({err})") from None
        loaded.append(name)
    for point in entry_points(group=GROUP):
        point.load()
        loaded.append(point.value)
    return loaded
