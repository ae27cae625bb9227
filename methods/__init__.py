"""Training methods. Each is one small class behind `methods.base.Method`, registered by
`@register_method` in its own module; importing this package registers the built-in ones."""

from __future__ import annotations

from torch import nn

from methods import ce, eac, gsmc, rul, scn  # noqa: F401  (registers the built-in methods)
from methods.base import METHODS, Method


def build_method(name: str, backbone: nn.Module, num_classes: int, **options) -> Method:
    """`options` are the method's own options by field name (e.g. EAC's `lam`, `erasure`),
    checked by its options dataclass."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    cls = METHODS[name]
    return cls(backbone, num_classes, cls.options_class(**options))
