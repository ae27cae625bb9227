"""The resolved configuration of one `audit run`: CLI options over a preset (`--preset`) over
the dataset's registry defaults over the declared defaults.

Every option is declared once (`auditor.options.option`): the core ones as the fields of
`RunConfig`, each method's in its options dataclass (`methods.base.Method.options_class`,
flags `--<method>-<option>`), each noise model's in its own (`auditor.datasets.noise`, flags
`--noise-<option>`). The `audit run` flags (`auditor.run_flags`), the merge (`resolve`), the
manifest's `config` (`RunConfig.as_dict`) and the validation are generated from those
declarations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from auditor.datasets.noise import NOISE_MODELS
from auditor.errors import UserError
from auditor.fsutil import absolute_user_path
from auditor.label_sources import label_source_problems
from auditor.options import (
    Options,
    default_of,
    option,
    problems_with,
    public_name,
    spec_of,
)
from auditor.presets import PRESETS
from auditor.training.engine import TrainConfig, resolve_amp
from auditor.training.length import MAX_EPOCHS, MIN_EPOCHS
from methods import METHODS
from methods.backbones import BACKBONES
from methods.base import MAX_LR


@dataclass(frozen=True)
class RunConfig:
    dataset: str
    method: list[str] = option(
        ["ce", "eac"],
        "the methods to train (repeatable or comma-separated)",
        choices=lambda: tuple(METHODS),
    )
    preset: str | None = option(
        None,
        "paper: the papers' settings (resnet18, 224 px, Adam 2e-4, 60 epochs, batch 256)",
        choices=PRESETS,
    )
    noise_rate: float = option(
        0.0,
        "inject this fraction of label noise (datasets.yaml may set its own)",
        at_least=0,
        below=1,
    )
    noise_type: str = option(
        "symmetric",
        "the noise model: symmetric (flip to another class), pair (y -> y+1), "
        "asymmetric (class-conditional matrix), instance (Xia et al. 2020), human-fer "
        "(FERPlus taggers' confusion, expression classes), matrix (--noise-matrix FILE) "
        "or a plug-in's",
        choices=lambda: tuple(NOISE_MODELS),
    )
    noise_file: str | None = option(None, "RAF-DB noise label file (noise01/02/03.txt format)")
    labels: str | None = option(
        None,
        "train on this label file (from `audit apply`, in the dataset's format) instead of "
        "the dataset's labels; training samples it does not list are left out",
    )
    # every sample's signals are kept for every epoch (epochs x N floats each): 10**9 epochs
    # asked for terabytes at the first step; the papers train 40-60
    epochs: int | None = option(
        None,
        f"training epochs; not set: until the held-out accuracy stops rising, {MIN_EPOCHS} to "
        f"{MAX_EPOCHS} ({MIN_EPOCHS} without a test or validation split)",
        at_least=1,
        at_most=1000,
    )
    folds: int = option(
        1, "K >= 2: cross-fit K models for out-of-sample probabilities (1: none)", at_least=1
    )
    backbone: str = option("resnet-small", "the network under every method", choices=BACKBONES)
    weights: str | None = option(
        None,
        "backbone checkpoint (.pth: state dict, {'state_dict': ...}, MS-Celeb layout) or "
        "'imagenet'",
    )
    allow_partial_weights: bool = option(
        False, "load a checkpoint even when some backbone tensors do not match"
    )
    # the decoded cache holds N x 3 x side^2 bytes and the backbones' memory grows with the
    # square of the side: at 1024 px one image is 3 MB (the papers train at 112-224 px)
    image_size: int = option(
        64, "side of the square training images, in pixels", at_least=8, at_most=1024
    )
    batch_size: int = option(256, "images per optimisation step", at_least=2)
    lr: float = option(1e-3, "Adam learning rate", above=0, at_most=MAX_LR)
    # Adam's (coupled) weight decay adds decay x weight to every gradient: at 1 it already
    # outweighs any loss's gradient, and beyond float32's range it turns the steps into NaN
    weight_decay: float = option(1e-4, "Adam weight decay", at_least=0, at_most=1)
    lr_gamma: float = option(
        0.9, "learning rate multiplied by this after every epoch", above=0, at_most=1
    )
    limit: int | None = option(
        None, "class-stratified subset of this many training samples", at_least=2
    )
    # a dataset without a test split gives every rule that reads accuracy (trusted methods,
    # the best epoch, the memorisation verdict, mirror symmetry) nothing to read: this share of
    # the training samples is held out instead (stratified by given label), and still audited
    validation: float = option(
        0.1,
        "share of the training samples held out as a validation split when the dataset has no "
        "test split (still audited, from a model that did not train on them); 0: none",
        at_least=0,
        at_most=0.5,
    )
    flip: bool | None = option(
        None,
        "train with random horizontal flips (not set: as datasets.yaml declares the dataset's "
        "mirror symmetry, else as measured on the held-out split)",
    )
    aum_threshold: bool = option(
        False, "two extra trainings per method with threshold samples, so AUM also flags"
    )
    # each worker is a spawned Python process holding PIL and NumPy; beyond the cores they only
    # queue, and a huge count would fork until the machine runs out of processes
    workers: int | None = option(
        None,
        "processes that decode the images into the cache (not set: one per core)",
        at_least=1,
        at_most=512,
    )
    image_cache: str = option(
        "auto",
        "where training reads the decoded images: memory, disk (read by batch from the cache "
        "file) or auto (memory when the cache takes at most half of the free memory)",
        choices=("auto", "memory", "disk"),
    )
    strict: bool = option(
        False,
        "an image that cannot be decoded is an error (off: it is skipped and listed in the "
        "manifest)",
    )
    report: bool = option(True, "write report.html (its UMAP map and CAM gallery)")
    balanced_sampling: bool = option(
        False,
        "oversample every class up to the largest each epoch (AffectNet's usual training)",
    )
    # NumPy's legacy seeding (the asymmetric noise model's, scikit-learn's random_state of the
    # fold split and UMAP) takes 0 to 2**32 - 1; torch's seeds are derived from it below 2**63
    seed: int = option(
        0,
        "seed of the noise, the initial weights and the augmentation",
        at_least=0,
        at_most=2**32 - 1,
    )
    device: str = option(
        "auto", "auto: cuda when visible, else cpu", choices=("auto", "cpu", "cuda")
    )
    amp: str = option(
        "auto",
        "bf16 autocast of the forward pass and loss; auto: on for CUDA, off on CPU",
        choices=("auto", "bf16", "off"),
    )
    compile: bool = option(
        False,
        "torch.compile the backbone (pays a one-off compile time; worth it on long GPU runs)",
    )
    root: str | None = option(
        None, "the dataset's folder (overrides the registry and its environment variable)"
    )
    out: str = option("reports", "output root")
    # the options of every registered part, by name (see GROUPS): methods and noise models
    methods: dict[str, Options] = field(default_factory=dict)
    noise_models: dict[str, Options] = field(default_factory=dict)
    # the options typed on the command line or set by --preset (not the dataset's defaults):
    # a choice the tool makes for itself (the working size, dropping a method) leaves these
    explicit: frozenset[str] = field(default=frozenset(), compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Flat, as the manifest records it: the core options and the options of the chosen
        methods (`<method>_<option>`) and noise model (`noise_<option>`)."""
        core = {f.name: getattr(self, f.name) for f in CORE}
        chosen = {("methods", m) for m in self.method} | {("noise_models", self.noise_type)}
        parts = {k: v[-1] for k, v in part_keys(self).items() if v[:2] in chosen}
        return {"dataset": self.dataset} | core | parts

    def train_config(self, device: str) -> TrainConfig:
        """The engine's settings; `flip` must be decided first
        (`auditor.data_choices.decide_flip`)."""
        if self.flip is None:
            raise ValueError("decide --flip before training (auditor.data_choices.decide_flip)")
        return TrainConfig(
            epochs=MAX_EPOCHS if self.epochs is None else self.epochs,
            until_plateau=self.epochs is None,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            lr_gamma=self.lr_gamma,
            seed=self.seed,
            device=device,
            balanced=self.balanced_sampling,
            amp=resolve_amp(self.amp, device),
            compile=self.compile,
            mirror=self.flip,
        )


CORE = [f for f in fields(RunConfig) if spec_of(f) is not None]


@dataclass(frozen=True)
class Group:
    """Parts whose options are declared by their own options dataclasses."""

    field: str  # the RunConfig field holding {part name: options}
    parts: Callable[[], dict[str, type[Options]]]  # part name -> options class, as registered now
    prefix: Callable[[str], str]  # part name -> the prefix of its keys
    title: str  # the --help section, formatted with the part's name


GROUPS = (
    Group(
        "methods",
        lambda: {n: c.options_class for n, c in METHODS.items()},
        lambda name: f"{name}_",
        "{} options",
    ),
    Group(
        "noise_models",
        lambda: {n: m.options_class for n, m in NOISE_MODELS.items()},
        lambda name: "noise_",
        "{} noise options",
    ),
)


def part_keys(config: RunConfig | None = None) -> dict[str, tuple[str, str, str, Any]]:
    """Flat key (`eac_lambda`, `noise_sparsity`) -> (group field, part, option field, value)
    for every option of every registered part: `config`'s values, or the defaults."""
    out: dict[str, tuple[str, str, str, Any]] = {}
    core = {f.name for f in CORE}
    for group in GROUPS:
        for part, cls in group.parts().items():
            chosen = getattr(config, group.field, {}).get(part) if config else None
            options = chosen or cls()
            for f in fields(options):
                key = group.prefix(part) + public_name(f)
                if key in core or key in out:
                    other = "a core option" if key in core else f"{out[key][1]}'s"
                    raise UserError(f"{part}'s option {key} has the name of {other}: rename one")
                out[key] = (group.field, part, f.name, getattr(options, f.name))
    return out


def declared_defaults() -> dict[str, Any]:
    return {f.name: default_of(f) for f in CORE} | {k: v[-1] for k, v in part_keys().items()}


def split_methods(value: Any) -> list[str]:
    """`ce,eac` or ["ce", "eac"] or repeated flags -> ["ce", "eac"] (order kept, duplicates
    dropped)."""
    items = value if isinstance(value, list) else [value]
    names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    return list(dict.fromkeys(names))


# Options naming the user's files, which later commands (export, apply, compare) locate again.
PATH_OPTIONS = ("root", "labels", "noise_file")


def resolve(
    dataset: str, cli: dict[str, Any], dataset_defaults: dict[str, Any], where: str = ""
) -> RunConfig:
    """The configuration of a new run; refuses unknown keys and bad values, naming them
    (`where`: the registry entry the defaults come from, for the message)."""
    given = {k: v for k, v in cli.items() if v is not None}
    preset = given.get("preset")
    defaults = declared_defaults()
    unknown = sorted(set(dataset_defaults) - set(defaults))
    if unknown:
        raise UserError(
            f"{where or f'the registry entry {dataset!r}'}: `defaults` name unknown options: "
            f"{', '.join(unknown)}"
        )
    # a preset that is not a name (not a str) is left to from_dict to refuse, naming --preset
    chosen = PRESETS.get(preset, {}) if isinstance(preset, str) else {}
    merged = defaults | dataset_defaults | chosen | given
    explicit = frozenset(chosen) | frozenset(given)
    if given.get("labels") and "noise_rate" not in given:
        merged["noise_rate"] = 0.0  # a corrected label file is trained on as it is
    merged["method"] = split_methods(merged["method"])
    for key in PATH_OPTIONS:  # recorded absolute: the run folder is read from any directory
        if isinstance(merged.get(key), str) and merged[key].strip():
            merged[key] = absolute_user_path(merged[key], f"--{key.replace('_', '-')}")
    return from_dict(dataset, merged, explicit)


def from_dict(
    dataset: str, values: dict[str, Any], explicit: frozenset[str] | None = None
) -> RunConfig:
    """A validated RunConfig from flat values (`resolve`'s merge, or a manifest's `config` on
    --resume); keys that are neither core options nor a part's options are refused. `explicit`:
    the keys the user set (`RunConfig.explicit`); all of them when None (a resumed run keeps
    every recorded value)."""
    keys = part_keys()
    core_names = {f.name for f in CORE}
    unknown = sorted(set(values) - core_names - set(keys) - {"dataset"})
    if unknown:
        raise UserError(
            f"unknown options {', '.join(unknown)} (a plug-in's options need it loaded: "
            "AUDIT_PLUGINS)"
        )
    core = {k: v for k, v in values.items() if k in core_names}
    given: dict[str, dict[str, dict[str, Any]]] = {g.field: {} for g in GROUPS}
    for key, (group, part, name, _) in keys.items():
        if key in values:
            given[group].setdefault(part, {})[name] = values[key]
    problems = problems_with(RunConfig, core)
    for group in GROUPS:
        for part, cls in group.parts().items():
            problems += problems_with(cls, given[group.field].get(part, {}), group.prefix(part))
    problems = problems or relation_problems(core)  # relations are read between valid values
    if problems:
        raise UserError("; ".join(problems))
    parts = {
        g.field: {part: cls(**given[g.field].get(part, {})) for part, cls in g.parts().items()}
        for g in GROUPS
    }
    explicit = frozenset(values) if explicit is None else explicit
    return RunConfig(dataset=dataset, **core, **parts, explicit=explicit)


def relation_problems(c: dict[str, Any]) -> list[str]:
    """What single-option checks cannot see: no method, a method signal no detector would
    score, and options that contradict each other."""
    import auditor.detectors  # noqa: F401  (registers the built-in detectors)
    from auditor.detectors.registry import unscored_signals

    problems = []
    if not c["method"]:
        problems.append(f"--method (none): choose from {', '.join(METHODS)}")
    for name in c["method"]:
        for signal in unscored_signals(METHODS[name].extra_signals):
            problems.append(
                f"method {name} records signal {signal!r} that no detector reads: register one "
                f"with @detector(..., reads=('signal:{signal}',)) (auditor.detectors.registry)"
            )
    return problems + label_source_problems(c)
