"""`audit synth-faces DIR`: the procedural faces (`auditor.datasets.synth_faces`) written as
files in RAF-DB's exact layout, with noise files in the format of EAC's noise01/02/03, into a
folder the write guard (`auditor.write_guard`) allows: how the `raf-db` loader is tested
without the licensed data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from auditor.dataset_layouts import SYNTH_FACES_MARKER, dataset_root_holding
from auditor.datasets.noise import symmetric_noise
from auditor.datasets.synth_faces import CLASSES, generate
from auditor.errors import UserError
from auditor.fsutil import atomic_path, write_text_atomic
from auditor.write_guard import check_place, refuse_dataset_roots, refuse_inside, run_folder_of


def rafdb_name(split: str, i: int) -> str:
    """RAF-DB's file names: train_00001.jpg (5 digits), test_0001.jpg (4 digits)."""
    return f"train_{i:05d}.jpg" if split == "train" else f"test_{i:04d}.jpg"


MARKER = SYNTH_FACES_MARKER  # written first into every output: what may be written over again
IMAGE_BYTES = 8192  # on disk, a JPEG written here takes at most about this much


def claim_folder(out: str | Path) -> Path:
    """`out` resolved, once it is known to be a folder `write_rafdb_layout` may write in: a new
    or empty one, or an earlier output of it (it holds MARKER), so that no dataset, nor any
    other folder of files, is written over. Refused otherwise, and under /proc, /sys and /dev or
    where no folder can be made (`auditor.write_guard.check_place`), inside a folder that is a
    dataset's root by what it holds (`auditor.dataset_layouts`: an earlier output among them),
    and, unless it is an earlier output, inside a registered dataset's root (an image folder
    would gain a class) or a run folder."""
    flag = "synth-faces OUT"
    target = check_place(out, flag)
    if target.exists() and not target.is_dir():
        raise UserError(f"synth-faces OUT {out} is a file: name a new or empty folder")
    above = dataset_root_holding(target, itself=False)
    if above is not None:
        refuse_inside(out, flag, above[0], f", which holds {above[1]}")
    if not (target / MARKER).is_file():
        refuse_dataset_roots(target, out, flag, ())
        run = run_folder_of(target / MARKER)
        if run is not None:
            raise UserError(
                f"synth-faces OUT {out} is inside the run folder {run}: write elsewhere"
            )
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise UserError(
            f"synth-faces OUT {out} holds files and is not a synth-faces output (no {MARKER}): "
            "name a new or empty folder, so that nothing there is overwritten"
        )
    return target


def check_room(out: Path, needed: int) -> None:
    """Refuse to start writing `needed` bytes into `out` when its disk has less free space."""
    folder = out
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UserError(
            f"synth-faces needs about {needed / 1e6:,.0f} MB and {folder} has "
            f"{free / 1e6:,.0f} MB free: ask for fewer images or write elsewhere"
        )


def noise_file_name(rate: float) -> str:
    """noiseNN.txt, NN = the rate in tenths, as EAC's noise01/02/03 files."""
    return f"noise{round(rate * 10):02d}.txt"


def write_rafdb_layout(
    out: str | Path,
    *,
    n_train: int,
    n_test: int,
    seed: int = 0,
    noise_rates: tuple[float, ...] = (),
) -> Path:
    """Write synthetic faces as RAF-DB does: `Image/aligned/<stem>_aligned.jpg` (100x100 RGB)
    and `EmoLabel/list_patition_label.txt` (`train_00001.jpg 5`, labels 1..7). For each rate in
    `noise_rates` (in [0, 1)), also `noise_file_name(rate)`: the train rows in the same order
    with flip-to-other noise. `out` must pass `claim_folder`; two rates naming one file are
    refused, and so are more images than the free disk space holds (the CLI bounds each split:
    `auditor.cli_parser.MAX_IMAGES`, as each is drawn in memory first). Returns `out`."""
    names = [noise_file_name(rate) for rate in noise_rates]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(f"--noise-files: two rates would write {repeated[0]}; give each once")
    out = claim_folder(out)
    check_room(out, (n_train + n_test) * IMAGE_BYTES)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / MARKER, json.dumps({"train": n_train, "test": n_test, "seed": seed}))
    image_dir = out / "Image" / "aligned"
    image_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, n, split_seed in (("train", n_train, seed * 2 + 1), ("test", n_test, seed * 2 + 2)):
        images, labels = generate(n, seed=split_seed)
        for i, (img, y) in enumerate(zip(images, labels, strict=True), start=1):
            name = rafdb_name(split, i)
            with atomic_path(image_dir / f"{name[:-4]}_aligned.jpg") as tmp:
                Image.fromarray(img).save(tmp, format="JPEG", quality=95)
            rows.append((split, name, int(y)))
    lines = [f"{name} {y + 1}" for _, name, y in rows]
    write_text_atomic(out / "EmoLabel" / "list_patition_label.txt", "\n".join(lines) + "\n")
    train = [(name, y) for split, name, y in rows if split == "train"]
    train_y = np.array([y for _, y in train], dtype=np.int64)
    for rate, file_name in zip(noise_rates, names, strict=True):
        noisy = symmetric_noise(train_y, len(CLASSES), rate, seed=seed + int(rate * 100))
        text = "".join(f"{name} {y + 1}\n" for (name, _), y in zip(train, noisy, strict=True))
        write_text_atomic(out / file_name, text)
    return out
