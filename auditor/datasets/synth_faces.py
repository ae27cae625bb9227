"""A procedural facial-expression generator: the stand-in for RAF-DB on machines without it.

Seven classes in RAF-DB's order (Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral).
The expression is carried by the mouth (curve, opening, width), the brows (height, inner-end
tilt) and the eyes (openness), each drawn from a class prototype plus per-sample jitter, so
neighbouring classes overlap a little. Identity (face shape, skin tone, eye spacing, hair),
pose (shift, in-plane rotation, scale), lighting (a brightness gradient) and background vary
independently of the class. Every face is left-right symmetric, so a mirrored face keeps its
label, as EAC assumes of real faces.

`auditor.synth_faces_folder.write_rafdb_layout` (`audit synth-faces DIR`) writes them as image
and label files in RAF-DB's exact layout, which is how the `raf-db` loader is tested without the
licensed data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from auditor.datasets.kinds import DatasetKind, register_kind
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import ArrayImages, SampleTable

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


register_kind(
    DatasetKind(
        name="synth-faces",
        load=load,
        status=status,
        options={"train": int, "test": int, "size": int},
    )
)
