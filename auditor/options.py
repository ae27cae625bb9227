"""Declared options: one dataclass field states an option's default, help, choices and bounds,
and the command-line flags, the configuration merge, the manifest and the validation are all
generated from it (`auditor.config`, `auditor.cli_parser`).

    @dataclass(frozen=True)
    class EACOptions(Options):
        lam: float = option(5.0, "weight of the consistency loss", name="lambda", at_least=0)

A method's options dataclass is its `options_class` (`methods.base.Method`); its flags are
`--<method>-<name>` (`--eac-lambda`), its keys in the configuration and the manifest
`<method>_<name>` (`eac_lambda`); a noise model's are `--noise-<name>` and `noise_<name>`
(`auditor.datasets.noise`). Core run options are the fields of `auditor.config.RunConfig`.
"""

from __future__ import annotations

import functools
import math
import operator
import types
import typing
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from auditor.errors import UserError


class SettingError(UserError):
    """Values that passed their declarations and still cannot train, which only training shows
    (a loss that overflows to NaN at this learning rate): `audit run --resume` keeps the run's
    settings, so it would fail the same way; a new run with other values is the fix."""


@dataclass(frozen=True)
class Spec:
    """What a field declares beyond its default: `help` for the flag, `choices` (a tuple, or a
    function returning one for choices that plug-ins extend; each element of a list value must
    be one), inclusive bounds (`at_least`, `at_most`) and exclusive ones (`above`, `below`), and
    the public `name` when the field's own cannot be it (`lambda` is a Python keyword)."""

    help: str
    choices: tuple[Any, ...] | typing.Callable[[], tuple[Any, ...]] | None = None
    at_least: float | None = None
    at_most: float | None = None
    above: float | None = None
    below: float | None = None
    name: str | None = None

    def allowed(self) -> tuple[Any, ...] | None:
        return self.choices() if callable(self.choices) else self.choices


def option(
    default: Any,
    help: str,
    *,
    choices: typing.Iterable[Any] | typing.Callable[[], tuple[Any, ...]] | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    above: float | None = None,
    below: float | None = None,
    name: str | None = None,
) -> Any:
    """A dataclass field with its `Spec`; list defaults are copied per instance."""
    fixed = None if choices is None or callable(choices) else tuple(choices)
    spec = Spec(
        help, choices if callable(choices) else fixed, at_least, at_most, above, below, name
    )
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"option": spec})
    return field(default=default, metadata={"option": spec})


def spec_of(f: Field) -> Spec | None:
    return f.metadata.get("option")


def public_name(f: Field) -> str:
    spec = spec_of(f)
    return spec.name if spec is not None and spec.name else f.name


def default_of(f: Field) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None if f.default is MISSING else f.default


@functools.cache
def hints(owner: type) -> dict[str, Any]:
    """The resolved annotations of a dataclass (read at every validation: resolved once)."""
    return typing.get_type_hints(owner)


def value_type(owner: type, f: Field) -> type:
    """The plain type of a field (`int`, `float`, `str`, `bool`, `list`) from its annotation;
    `X | None` gives X."""
    hint = hints(owner)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    return typing.get_origin(hint) or hint


def optional(owner: type, f: Field) -> bool:
    """Whether the annotation of field `f` admits None (`X | None`: the option may be unset)."""
    return type(None) in typing.get_args(hints(owner)[f.name])


def of_type(value: Any, kind: type) -> bool:
    """Whether `value` is a `kind` (ints count as floats, bools as neither)."""
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def shown(value: Any) -> str:
    """`value` as a message shows it: its repr, but an integer of more than 20 digits by its
    order of magnitude (Python refuses to print one of over 4300 digits at all)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"{'-' if value < 0 else ''}10^{math.log10(abs(value)):.1f}"
    return repr(value)


def problems_with(owner: type, values: dict[str, Any], prefix: str | None = "") -> list[str]:
    """What is wrong with `values` (field name -> value) for the declared fields of `owner`,
    each naming its flag (`--<prefix><name>`; with `prefix=None` its plain name): values of the
    wrong type (None where the option cannot be unset), non-finite numbers, values out of
    bounds or not among the choices. Fields without a Spec, and those absent, are not checked."""
    out = []
    for f in fields(owner):
        spec = spec_of(f)
        if spec is None or f.name not in values:
            continue
        value = values[f.name]
        flag = (
            public_name(f) if prefix is None else "--" + (prefix + public_name(f)).replace("_", "-")
        )
        kind = value_type(owner, f)
        if value is None:
            if not optional(owner, f):
                out.append(f"{flag} None: must be {kind.__name__}, it cannot be unset")
            continue
        if not of_type(value, kind):
            out.append(f"{flag} {shown(value)}: must be {kind.__name__}")
            continue
        allowed = spec.allowed()
        if allowed is not None:
            bad = [v for v in (value if isinstance(value, list) else [value]) if v not in allowed]
            if bad:
                out.append(
                    f"{flag} {','.join(map(str, bad))}: choose from {', '.join(map(str, allowed))}"
                )
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and not math.isfinite(value):  # an int is always finite
            out.append(f"{flag} {value}: must be a finite number")
            continue
        broken = [
            f"{words} {bound:g}" if isinstance(bound, float) else f"{words} {bound}"
            for bound, ok, words in (
                (spec.at_least, operator.ge, "at least"),
                (spec.at_most, operator.le, "at most"),
                (spec.above, operator.gt, "above"),
                (spec.below, operator.lt, "below"),
            )
            if bound is not None and not ok(value, bound)
        ]
        if broken:
            out.append(f"{flag} {shown(value)}: must be {' and '.join(broken)}")
    return out


@dataclass(frozen=True)
class Options:
    """Base of every options dataclass: constructing one with a bad value raises UserError,
    naming the option (so a method built from Python is checked like one built from the CLI)."""

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        problems = problems_with(type(self), values, prefix=None)
        if problems:
            raise UserError(f"{type(self).__name__}: {'; '.join(problems)}")


@dataclass(frozen=True)
class NoOptions(Options):
    """A part (method, noise model) without options of its own."""
