"""The dataset registry: `datasets.yaml`, read with `yaml.safe_load` (no Python tags)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from auditor.errors import UserError

DEFAULT_REGISTRY = Path(__file__).resolve().parents[2] / "datasets.yaml"
KNOWN_KEYS = {"kind", "description", "root", "env", "classes", "defaults"}


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    kind: str
    root: str | None
    env: str | None
    classes: list[str] | None
    defaults: dict[str, Any]
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # loader-specific keys

    def resolve_root(self, override: str | os.PathLike | None = None) -> Path | None:
        """--root, then the environment variable `env`, then `root` from the registry."""
        chosen = override or (os.environ.get(self.env) if self.env else None) or self.root
        return Path(chosen).expanduser() if chosen else None

    def root_hint(self) -> str:
        """How a user points the tool at this dataset's files."""
        via_env = f" or set {self.env}=DIR" if self.env else ""
        return f"pass --root DIR{via_env}"


def registry_path() -> Path:
    return Path(os.environ.get("AUDIT_DATASETS", DEFAULT_REGISTRY))


def load_registry(path: Path | None = None) -> dict[str, DatasetEntry]:
    path = path or registry_path()
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"dataset registry {path} not found (set AUDIT_DATASETS to its path)"
        ) from None
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not plain YAML: {err}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of dataset names to entries")
    entries = {}
    for name, body in raw.items():
        if not isinstance(body, dict) or "kind" not in body:
            raise UserError(f"{path}: entry {name!r} must be a mapping with a 'kind'")
        entries[str(name)] = DatasetEntry(
            name=str(name),
            kind=str(body["kind"]),
            root=None if body.get("root") is None else str(body["root"]),
            env=body.get("env"),
            classes=body.get("classes"),
            defaults=dict(body.get("defaults") or {}),
            description=str(body.get("description", "")),
            options={k: v for k, v in body.items() if k not in KNOWN_KEYS},
        )
    return entries


def get_entry(name: str, registry: dict[str, DatasetEntry]) -> DatasetEntry:
    if name not in registry:
        raise UserError(
            f"unknown dataset {name!r}; known: {', '.join(registry)} (see `audit datasets`)"
        )
    return registry[name]
