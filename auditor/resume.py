"""`audit run --resume RUN_DIR`: every rule of taking over an unfinished run, in one place.

- The request (`resume_request`): --resume keeps the run's own settings, so no dataset and no
  option may be given beside it, and the run trains with the processes it started with.
- The manifest (`resumable_manifest`): of the shape `RESUMABLE`, not complete, not failed on its
  settings, its config one `audit run` would take and write (`config_problem`; options added
  since the run started take `ADDED_SINCE`, the values that reproduce it), every checkpoint
  readable.
- The data (`refuse_changed_data`): the dataset's fingerprint and the validation split drawn now
  are the run's, or its checkpoints would go on training on other samples.
- The checkpoints (`refuse_unfit_checkpoints`): each fits the model of the training it continues
  (another backbone's, another method's, is refused).

Every one of these checks is done before the manifest is rewritten (`running`, `resumed`).

The run folder's life cycle is `auditor.outputs.run_folder.RunState.resume`; a training's own
checkpoint is read by the engine (`auditor.training.checkpoint.resume_state`). A refusal changes
nothing in the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from auditor.config import CORE, declared_defaults, from_dict
from auditor.damage import DamagedRunFolder, check_checkpoints, checkpoint_damage, load_checkpoint
from auditor.errors import UserError

if TYPE_CHECKING:
    from auditor.prepare import Prepared
from auditor.outputs.run_readers import RESUMABLE, read_manifest

# A training's checkpoint: `<method>.pt`, a fold's `<method>-fold<k>.pt`, an AUM threshold
# run's `<method>-aum<k>.pt` (`auditor.training.engine.checkpoint_for`).
CHECKPOINT_NAME = re.compile(r"(?P<method>.+?)(?:-(?P<part>fold|aum)[0-9]+)?")
# Options declared after runs were already written, with the value that reproduces such a run
# on --resume: it held nothing out and trained with flips.
ADDED_SINCE = {"validation": 0.0, "flip": True}


@dataclass(frozen=True)
class Resume:
    """An unfinished run to continue: its folder, its manifest (`resumable_manifest`) and the
    number of processes it trains with."""

    run_dir: Path
    manifest: dict
    processes: int


def resume_request(run_dir: str, dataset: str | None, given: dict, nproc: int | None) -> Resume:
    """`audit run --resume RUN_DIR`: refused when a `dataset` or options (`given`: flag name ->
    value, None when not typed) are given beside it, or `--nproc` differs from the run's."""
    typed = sorted(f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None)
    if dataset or typed:
        dropped = " ".join([*([dataset] if dataset else []), *typed])
        raise UserError(f"--resume continues a run with its own settings; drop {dropped}")
    manifest = resumable_manifest(Path(run_dir))
    processes = int(manifest.get("processes", 1))
    if nproc is not None and nproc != processes:
        raise UserError(
            f"--resume: the run trains with {processes} process(es); drop --nproc {nproc}"
        )
    return Resume(Path(run_dir), manifest, processes)


def refuse_changed_data(
    manifest: dict, dataset: str, fingerprint: str, validation: dict | None
) -> None:
    """Refuse to resume when the dataset changed since the run started (its `fingerprint`) or
    the validation split drawn now (`validation`, as `auditor.data_choices.validation_record`
    writes it) is not the one the run held out: its checkpoints never trained on those samples
    (the given labels or the decodable images changed)."""
    if manifest["dataset_fingerprint"] != fingerprint:
        raise UserError(
            f"--resume: the dataset {dataset} changed since the run started "
            f"(fingerprint {fingerprint}, the run had {manifest['dataset_fingerprint']})"
        )
    recorded = (manifest.get("validation") or {}).get("sample_ids")
    if recorded != (validation or {}).get("sample_ids"):
        raise UserError(
            "--resume: the validation split drawn now is not the one the run held out (the "
            "given labels or the decodable images changed since); start a new run"
        )


def refuse_unfit_checkpoints(run_dir: Path, prepared: Prepared) -> None:
    """Refuse, before the run folder changes, a checkpoint that cannot continue the training it
    is named for (`auditor.training.checkpoint.fit_problem`: the model of that method, built
    now as the training builds it, with one more class for an AUM threshold run; its optimiser's
    groups; its epochs done). The loop checks each again when it loads it."""
    from auditor.training.checkpoint import fit_problem

    config, built = prepared.config, {}
    epochs = config.train_config(prepared.device).epochs
    for path in sorted((Path(run_dir) / "checkpoints").glob("*.pt")):
        name = CHECKPOINT_NAME.fullmatch(path.stem)
        if name is None or name["method"] not in config.method:
            continue  # no training reads it
        key = (name["method"], name["part"] == "aum")
        if key not in built:
            classes = prepared.train_table.num_classes + 1 if key[1] else None
            built[key] = prepared.new_model(key[0], config.seed, classes)
        model = built[key]
        state = load_checkpoint(path)
        problem = fit_problem(state, model, model.param_groups(config.lr), epochs)
        if problem:
            raise checkpoint_damage(path, f"does not fit this run's training ({problem})")


def resumable_manifest(run_dir: Path) -> dict:
    """The manifest of a run folder that `audit run --resume` can continue: of the shape
    RESUMABLE, its config what `audit run` would accept and would write (`config_problem`), and
    every checkpoint readable (`auditor.damage.check_checkpoints`). Nothing in the
    folder is changed by a refusal."""
    manifest = read_manifest(
        run_dir, RESUMABLE, lambda s: "the run is already complete" if s == "complete" else None
    )
    if manifest.get("resumable") is False:
        raise UserError(
            f"--resume {run_dir}: the run failed on its settings, which --resume keeps "
            f"({manifest.get('error')}): start a new run"
        )
    manifest["config"] = ADDED_SINCE | manifest["config"]  # a run written before those options
    problem = config_problem(manifest["dataset"], manifest["config"])
    if problem:
        raise DamagedRunFolder(Path(run_dir) / "manifest.json", problem)
    check_checkpoints(Path(run_dir) / "checkpoints")
    return manifest


def config_problem(dataset: str, values: dict) -> str | None:
    """Why a manifest's `config` is not one `audit run` would take and write, naming the keys:
    null where the option has a value, an option missing or not its own, a value
    `auditor.config.from_dict` refuses; None when it is."""
    defaults = declared_defaults()
    nulls = sorted(k for k, v in values.items() if v is None and defaults.get(k) is not None)
    problem = config_with(
        ("{} null", nulls), ("no {}", sorted({f.name for f in CORE} - set(values)))
    )
    if problem:
        return problem
    try:
        written = from_dict(dataset, values).as_dict()
    except UserError as err:
        return f"has a config that audit run refuses: {err}"
    return config_with(
        ("no {}", sorted(set(written) - set(values))),
        ("{}, options of no method or noise it uses", sorted(set(values) - set(written))),
    )


def config_with(*parts: tuple[str, list[str]]) -> str | None:
    """'has a config with <part>; <part>' for the parts (a format, the keys) naming any key."""
    named = [what.format(", ".join(keys)) for what, keys in parts if keys]
    return "has a config with " + "; ".join(named) if named else None
