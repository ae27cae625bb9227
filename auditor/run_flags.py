"""`audit run`'s option flags, generated from the declared options (`auditor.config`): one
flag per option, each stating its default, every default None so that only what the user typed
overrides the preset and the dataset's defaults (`auditor.config.resolve`)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from auditor.config import CORE, GROUPS, RunConfig, part_keys
from auditor.options import default_of, public_name, spec_of, value_type


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per declared option: `--<option>` for the core ones, `--<method>-<option>` for
    each registered method's, `--noise-<option>` for each noise model's. Every default is None,
    so that only what the user typed overrides the preset and the dataset's defaults
    (`resolve`)."""
    part_keys()  # refuses a part option whose flag another option already has
    for f in CORE:
        spec = spec_of(f)
        add_flag(parser, f.name, spec.help, value_type(RunConfig, f), spec.allowed(), default_of(f))
    for group in GROUPS:
        for part, cls in group.parts().items():
            if not fields(cls):
                continue
            section = parser.add_argument_group(group.title.format(part))
            for f in fields(cls):
                spec = spec_of(f)
                add_flag(
                    section,
                    group.prefix(part) + public_name(f),
                    spec.help,
                    value_type(cls, f),
                    spec.allowed(),
                    default_of(f),
                )


def add_flag(parser, key: str, help: str, kind: type, choices, default: Any) -> None:
    flag = "--" + key.replace("_", "-")
    text = help + (f"; one of {', '.join(map(str, choices))}" if choices else "")
    if kind is bool:
        shown = "auto" if default is None else "on" if default else "off"
        parser.add_argument(
            flag,
            dest=key,
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"{text} (default {shown})",
        )
    elif kind is list:
        parser.add_argument(
            flag, dest=key, action="append", help=f"{text} (default {','.join(default)})"
        )
    else:
        shown = " (default: not set)" if default is None else f" (default {default})"
        shown = "" if "(default" in text else shown  # the help states it already
        parser.add_argument(flag, dest=key, type=kind, help=text + shown)
