"""The resolved configuration of one `audit run`: CLI options over a preset (`--preset`) over
the dataset's registry defaults over the tool's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from auditor.datasets.noise import NOISE_TYPES
from auditor.errors import UserError
from auditor.training.engine import TrainConfig, resolve_amp
from methods import METHODS
from methods.backbones import BACKBONES
from methods.eac import ERASURES
from methods.scn import LOSSES as SCN_LOSSES
from methods.scn import RELABEL_SCOPES

TOOL_DEFAULTS: dict[str, Any] = {
    "method": ["ce", "eac"],
    "noise_rate": 0.0,
    "noise_type": "symmetric",
    "noise_sparsity": 0.0,
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
    "amp": "auto",
    "compile": False,
    "eac_lambda": 5.0,
    "eac_erasure": "same",
    "scn_beta": 0.7,
    "scn_delta1": 0.15,
    "scn_delta2": 0.2,
    "scn_gamma": 0.5,
    "scn_loss": "paper",
    "scn_relabel": "low",
    "scn_relabel_epoch": 10,
    "gsmc_erasure": "same",
    "preset": None,
}

# The papers' training settings (EAC paper, Sec. 4.1; METHODS.md), for users with a GPU.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "backbone": "resnet18",
        "image_size": 224,
        "lr": 2e-4,
        "weight_decay": 1e-4,
        "lr_gamma": 0.9,
        "epochs": 60,
        "batch_size": 256,
        "eac_lambda": 5.0,
    },
}


@dataclass(frozen=True)
class RunConfig:
    dataset: str
    method: list[str]
    noise_rate: float
    noise_type: str
    noise_sparsity: float
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
    scn_beta: float
    scn_delta1: float
    scn_delta2: float
    scn_gamma: float
    scn_loss: str
    scn_relabel: str
    scn_relabel_epoch: int
    gsmc_erasure: str
    preset: str | None = None
    amp: str = "auto"
    compile: bool = False
    weights: str | None = None
    allow_partial_weights: bool = False
    aum_threshold: bool = False
    strict: bool = False
    report: bool = True
    balanced_sampling: bool = False
    limit: int | None = None
    noise_file: str | None = None
    labels: str | None = None
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
            balanced=self.balanced_sampling,
            amp=resolve_amp(self.amp, device),
            compile=self.compile,
        )

    def method_options(self, name: str) -> dict[str, Any]:
        """The keyword arguments of method `name`'s class."""
        options = {
            "eac": {"lam": self.eac_lambda, "erasure": self.eac_erasure},
            "scn": {
                "beta": self.scn_beta,
                "delta1": self.scn_delta1,
                "delta2": self.scn_delta2,
                "gamma": self.scn_gamma,
                "loss": self.scn_loss,
                "relabel_scope": self.scn_relabel,
                "relabel_epoch": self.scn_relabel_epoch,
            },
            "gsmc": {"erasure": self.gsmc_erasure},
        }
        return options.get(name, {})


def split_methods(value: Any) -> list[str]:
    """`ce,eac` or ["ce", "eac"] or repeated flags -> ["ce", "eac"] (order kept, duplicates dropped)."""
    items = value if isinstance(value, list) else [value]
    names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    return list(dict.fromkeys(names))


def resolve(dataset: str, cli: dict[str, Any], dataset_defaults: dict[str, Any]) -> RunConfig:
    given = {k: v for k, v in cli.items() if v is not None}
    preset = given.get("preset")
    if preset is not None and preset not in PRESETS:
        raise UserError(f"--preset {preset}: choose from {', '.join(PRESETS)}")
    merged = TOOL_DEFAULTS | dataset_defaults | PRESETS.get(preset, {}) | given
    if given.get("labels") and "noise_rate" not in given:
        merged["noise_rate"] = 0.0  # a corrected label file is trained on as it is
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
    if not 0.0 <= c.noise_sparsity <= 1.0:
        problems.append(f"--noise-sparsity {c.noise_sparsity}: must be in [0, 1]")
    if c.noise_type not in NOISE_TYPES:
        problems.append(f"--noise-type {c.noise_type}: choose from {', '.join(NOISE_TYPES)}")
    if c.noise_file and c.noise_rate > 0:
        problems.append(
            "--noise-file and --noise-rate > 0 together: a noise file already sets the labels"
        )
    if c.labels and c.noise_file:
        problems.append("--labels and --noise-file together: choose one label source")
    if c.labels and c.noise_rate > 0:
        problems.append(
            "--labels and --noise-rate > 0 together: a label file is trained on as it is"
        )
    if c.backbone not in BACKBONES:
        problems.append(f"--backbone {c.backbone}: choose from {', '.join(BACKBONES)}")
    for flag, value, choices in (
        ("--eac-erasure", c.eac_erasure, ERASURES),
        ("--gsmc-erasure", c.gsmc_erasure, ERASURES),
        ("--scn-loss", c.scn_loss, SCN_LOSSES),
        ("--scn-relabel", c.scn_relabel, RELABEL_SCOPES),
    ):
        if value not in choices:
            problems.append(f"{flag} {value}: choose from {', '.join(choices)}")
    if not 0 < c.scn_beta < 1:
        problems.append(f"--scn-beta {c.scn_beta}: must be in (0, 1)")
    for name, low in (("epochs", 1), ("folds", 1), ("image_size", 8), ("batch_size", 2)):
        if getattr(c, name) < low:
            problems.append(
                f"--{name.replace('_', '-')} {getattr(c, name)}: must be at least {low}"
            )
    if c.limit is not None and c.limit < 2:
        problems.append(f"--limit {c.limit}: must be at least 2")
    if c.amp not in ("auto", "bf16", "off"):
        problems.append(f"--amp {c.amp}: choose auto, bf16 or off")
    if c.device not in ("auto", "cpu", "cuda"):
        problems.append(f"--device {c.device}: choose auto, cpu or cuda")
    if problems:
        raise UserError("; ".join(problems))
