"""A procedural facial-expression generator: the stand-in for RAF-DB on machines without it.

Seven classes in RAF-DB's order (Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral).
The expression is carried by the mouth (curve, opening, width), the brows (height, inner-end
tilt) and the eyes (openness), each drawn from a class prototype plus per-sample jitter, so
neighbouring classes overlap a little. Identity (face shape, skin tone, eye spacing, hair),
pose (shift, in-plane rotation, scale), lighting (a brightness gradient) and background vary
independently of the class. Every face is left-right symmetric, so a mirrored face keeps its
label, as EAC assumes of real faces.

`write_rafdb_layout` writes the images and label files in RAF-DB's exact layout, which is how
the `raf-db` loader is tested without the licensed data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from auditor.datasets.kinds import DatasetKind, register_kind
from auditor.datasets.noise import symmetric_noise
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import ArrayImages, SampleTable
from auditor.errors import UserError
from auditor.fsutil import atomic_path, write_text_atomic
from auditor.write_guard import check_place, refuse_dataset_roots, run_folder_of

CLASSES = ("Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral")

# eye_open, brow_raise, brow_tilt (inner end up > 0), mouth_curve (smile > 0), mouth_open,
# mouth_width
PROTOTYPES = np.array(
    [
        [1.00, 1.00, 0.00, 0.00, 0.90, 0.45],  # Surprise
        [0.90, 0.60, 0.70, -0.30, 0.40, 0.90],  # Fear
        [0.30, -0.50, -0.30, -0.60, 0.15, 0.60],  # Disgust
        [0.50, 0.00, 0.00, 1.00, 0.30, 0.90],  # Happiness
        [0.45, 0.10, 0.90, -0.90, 0.00, 0.60],  # Sadness
        [0.45, -0.90, -0.90, -0.20, 0.05, 0.55],  # Anger
        [0.60, 0.00, 0.00, 0.00, 0.00, 0.60],  # Neutral
    ]
)
JITTER = 0.15


def _curve(
    cx: float, cy: float, half_w: float, bend: float, n: int = 12
) -> list[tuple[float, float]]:
    """Points of y = cy + bend * (1 - t^2) for t in [-1, 1] (bend > 0 sags in the middle)."""
    t = np.linspace(-1, 1, n)
    return [(cx + half_w * ti, cy + bend * (1 - ti * ti)) for ti in t]


def draw_face(expr: np.ndarray, rng: np.random.Generator, size: int = 100) -> np.ndarray:
    """One face [size, size, 3] uint8 for expression parameters `expr` (see PROTOTYPES)."""
    eye_open, brow_raise, brow_tilt, curve, mouth_open, mouth_w = expr
    s = 2 * size  # draw at twice the size, then downsample (anti-aliasing)
    bg = rng.integers(40, 220, size=3)
    img = Image.new("RGB", (s, s), tuple(int(c) for c in bg))
    d = ImageDraw.Draw(img)
    skin = np.array([230, 190, 160]) * rng.uniform(0.45, 1.1) + rng.normal(0, 10, 3)
    skin_t = tuple(int(c) for c in np.clip(skin, 30, 255))
    dark = tuple(int(c) for c in np.clip(skin * 0.35, 0, 255))
    cx, cy = s / 2, s / 2
    fw, fh = s * rng.uniform(0.30, 0.38), s * rng.uniform(0.38, 0.46)
    hair = tuple(int(c) for c in rng.integers(10, 120, size=3))
    d.ellipse([cx - fw * 1.05, cy - fh * 1.08, cx + fw * 1.05, cy + fh * 0.2], fill=hair)
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh], fill=skin_t)
    # eyes: mirrored pair
    spacing = fw * rng.uniform(0.38, 0.5)
    ey = cy - fh * 0.15
    ew = fw * 0.22
    eh = max(1.5, fw * 0.16 * float(np.clip(eye_open, 0.05, 1.3)))
    iris = tuple(int(c) for c in rng.integers(20, 110, size=3))
    for side in (-1, 1):
        ex = cx + side * spacing
        d.ellipse([ex - ew, ey - eh, ex + ew, ey + eh], fill=(245, 245, 245))
        r = min(eh, ew * 0.55)
        d.ellipse([ex - r, ey - r, ex + r, ey + r], fill=iris)
        # brows: the inner end moves by the tilt, the whole brow by the raise
        by = ey - fh * 0.22 - brow_raise * fh * 0.08
        inner = (cx + side * spacing * 0.35, by - brow_tilt * fh * 0.07)
        outer = (cx + side * spacing * 1.45, by + brow_tilt * fh * 0.03)
        d.line([inner, outer], fill=dark, width=max(2, int(s * 0.025)))
    # nose
    d.line([(cx, cy - fh * 0.05), (cx, cy + fh * 0.22)], fill=dark, width=max(1, int(s * 0.01)))
    # mouth: upper lip curve, lower lip further down by the opening
    my = cy + fh * 0.5
    half = fw * 0.55 * float(np.clip(mouth_w, 0.2, 1.2))
    bend = curve * fh * 0.12
    upper = _curve(cx, my, half, bend)
    lower = _curve(cx, my, half, bend + max(0.0, mouth_open) * fh * 0.3)
    lips = (150, 40, 50)
    if mouth_open > 0.08:
        d.polygon(upper + lower[::-1], fill=(60, 10, 20), outline=lips)
    d.line(upper, fill=lips, width=max(2, int(s * 0.02)))
    # pose and lighting
    img = img.rotate(
        rng.uniform(-12, 12), resample=Image.BILINEAR, fillcolor=tuple(int(c) for c in bg)
    )
    crop = s * rng.uniform(0.8, 0.95)
    x0, y0 = rng.uniform(0, s - crop, size=2)
    img = img.resize((size, size), Image.BILINEAR, box=(x0, y0, x0 + crop, y0 + crop))
    arr = np.asarray(img, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    light = 1 + rng.uniform(0.0, 0.6) * (np.cos(angle) * xx + np.sin(angle) * yy)
    arr = arr * light[..., None] + rng.normal(0, 4, arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def generate(n: int, *, seed: int, size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(images [n, size, size, 3] uint8, labels [n] in 0..6), classes balanced in a shuffled
    order."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    expr = PROTOTYPES[labels] + rng.normal(0, JITTER, size=(n, PROTOTYPES.shape[1]))
    images = (
        np.stack([draw_face(e, rng, size) for e in expr])
        if n
        else np.zeros((0, size, size, 3), np.uint8)
    )
    return images, labels.astype(np.int64)


def status(entry: DatasetEntry, root: Path | None) -> tuple[bool, str]:
    return (
        True,
        f"generated: {entry.options.get('train', 2100)} train / "
        f"{entry.options.get('test', 700)} test",
    )


def load(entry: DatasetEntry, root: Path | None) -> SampleTable:
    size = int(entry.options.get("size", 100))
    n_train, n_test = int(entry.options.get("train", 2100)), int(entry.options.get("test", 700))
    train_x, train_y = generate(n_train, seed=1, size=size)
    test_x, test_y = generate(n_test, seed=2, size=size)
    ids = [f"train-{i + 1:05d}" for i in range(n_train)] + [
        f"test-{i + 1:04d}" for i in range(n_test)
    ]
    return SampleTable(
        name=entry.name,
        class_names=list(CLASSES),
        sample_ids=np.array(ids),
        filepaths=np.array([f"synth-faces:{i}" for i in ids]),
        labels=np.concatenate([train_y, test_y]),
        split=np.array(["train"] * n_train + ["test"] * n_test),
        images=ArrayImages(np.concatenate([train_x, test_x])),
    )


def rafdb_name(split: str, i: int) -> str:
    """RAF-DB's file names: train_00001.jpg (5 digits), test_0001.jpg (4 digits)."""
    return f"train_{i:05d}.jpg" if split == "train" else f"test_{i:04d}.jpg"


MARKER = "synth-faces.json"  # written first into every output: what may be written over again


def claim_folder(out: str | Path) -> Path:
    """`out` resolved, once it is known to be a folder `write_rafdb_layout` may write in: a new
    or empty one, or an earlier output of it (it holds MARKER), so that no dataset, nor any
    other folder of files, is written over. Refused otherwise, and under /proc, /sys and /dev or
    where no folder can be made (`auditor.write_guard.check_place`), and, unless it is an earlier
    output, inside a dataset's root (an image folder would gain a class) or a run folder."""
    flag = "synth-faces OUT"
    target = check_place(out, flag)
    if target.exists() and not target.is_dir():
        raise UserError(f"synth-faces OUT {out} is a file: name a new or empty folder")
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
    refused. Returns `out`."""
    names = [noise_file_name(rate) for rate in noise_rates]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(f"--noise-files: two rates would write {repeated[0]}; give each once")
    out = claim_folder(out)
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


register_kind(
    DatasetKind(
        name="synth-faces",
        load=load,
        status=status,
        options={"train": int, "test": int, "size": int},
    )
)
