"""The resolved configuration of one `audit run`: CLI options over the dataset's registry
defaults over the tool's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from auditor.datasets.noise import NOISE_TYPES
from auditor.errors import UserError
from auditor.training.engine import TrainConfig
from methods import METHODS
from methods.backbones import BACKBONES
from methods.eac import ERASURES

TOOL_DEFAULTS: dict[str, Any] = {
    "method": ["ce", "eac"],
    "noise_rate": 0.0,
    "noise_type": "symmetric",
    "epochs": 10,
    "folds": 1,
    "backbone": "resnet-small",
    "image_size": 64,
    "batch_size": 256,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "lr_gamma": 0.9,
    "seed": 0,
    "device": "auto",
    "eac_lambda": 5.0,
    "eac_erasure": "same",
}


@dataclass(frozen=True)
class RunConfig:
    dataset: str
    method: list[str]
    noise_rate: float
    noise_type: str
    epochs: int
    folds: int
    backbone: str
    image_size: int
    batch_size: int
    lr: float
    weight_decay: float
    lr_gamma: float
    seed: int
    device: str
    eac_lambda: float
    eac_erasure: str
    limit: int | None = None
    noise_file: str | None = None
    root: str | None = None
    out: str = "reports"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def train_config(self, device: str) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            lr_gamma=self.lr_gamma,
            seed=self.seed,
            device=device,
        )

    def method_options(self, name: str) -> dict[str, Any]:
        return {"lam": self.eac_lambda, "erasure": self.eac_erasure} if name == "eac" else {}


def split_methods(value: Any) -> list[str]:
    """`ce,eac` or ["ce", "eac"] or repeated flags -> ["ce", "eac"] (order kept, duplicates dropped)."""
    items = value if isinstance(value, list) else [value]
    names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    return list(dict.fromkeys(names))


def resolve(dataset: str, cli: dict[str, Any], dataset_defaults: dict[str, Any]) -> RunConfig:
    merged = TOOL_DEFAULTS | dataset_defaults | {k: v for k, v in cli.items() if v is not None}
    known = {f.name for f in fields(RunConfig)}
    merged = {k: v for k, v in merged.items() if k in known}
    merged["method"] = split_methods(merged["method"])
    config = RunConfig(dataset=dataset, **merged)
    validate(config)
    return config


def validate(c: RunConfig) -> None:
    problems = []
    unknown = [m for m in c.method if m not in METHODS]
    if unknown or not c.method:
        problems.append(
            f"--method {','.join(unknown) or '(none)'}: choose from {', '.join(METHODS)}"
        )
    if not 0.0 <= c.noise_rate < 1.0:
        problems.append(f"--noise-rate {c.noise_rate}: must be in [0, 1)")
    if c.noise_type not in NOISE_TYPES:
        problems.append(f"--noise-type {c.noise_type}: choose from {', '.join(NOISE_TYPES)}")
    if c.noise_file and c.noise_rate > 0:
        problems.append(
            "--noise-file and --noise-rate > 0 together: a noise file already sets the labels"
        )
    if c.backbone not in BACKBONES:
        problems.append(f"--backbone {c.backbone}: choose from {', '.join(BACKBONES)}")
    if c.eac_erasure not in ERASURES:
        problems.append(f"--eac-erasure {c.eac_erasure}: choose from {', '.join(ERASURES)}")
    for name, low in (("epochs", 1), ("folds", 1), ("image_size", 8), ("batch_size", 2)):
        if getattr(c, name) < low:
            problems.append(
                f"--{name.replace('_', '-')} {getattr(c, name)}: must be at least {low}"
            )
    if c.limit is not None and c.limit < 2:
        problems.append(f"--limit {c.limit}: must be at least 2")
    if c.device not in ("auto", "cpu", "cuda"):
        problems.append(f"--device {c.device}: choose auto, cpu or cuda")
    if problems:
        raise UserError("; ".join(problems))
