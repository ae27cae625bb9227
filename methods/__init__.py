"""Training methods. Each is one small class behind `methods.base.Method`."""

from __future__ import annotations

from torch import nn

from methods.base import Method
from methods.ce import CE
from methods.eac import EAC
from methods.gsmc import GSMC
from methods.rul import RUL
from methods.scn import SCN

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (CE, EAC, SCN, RUL, GSMC)}


def build_method(name: str, backbone: nn.Module, num_classes: int, **options) -> Method:
    """`options` are the method's own keyword arguments (e.g. EAC's `lam`, `erasure`)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name](backbone, num_classes, **options)
