"""Fixtures written in the exact layouts of FERPlus, AffectNet and the generic CSV, with
synthetic faces as pixels (the real images are licensed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from auditor.datasets.ferplus import EMOTIONS, VOTE_COLUMNS
from auditor.datasets.synth_faces import CLASSES

VOTES = (
    Path(__file__).resolve().parent / "data" / "ferplus" / "fer2013new.csv"
)  # MIT, see its README
FERPLUS_TO_FER2013 = {0: 6, 1: 3, 2: 5, 3: 4, 4: 0, 5: 1, 6: 2, 7: 1}  # contempt -> Disgust
SYNTH_OF_EMOTION = {
    e: CLASSES.index(n)
    for e, n in enumerate(
        ["Neutral", "Happiness", "Surprise", "Sadness", "Anger", "Disgust", "Fear", "Disgust"]
    )
}


def write_ferplus(root: Path, per_split: dict[str, int]) -> Path:
    """The first rows of each Usage of the real votes file, and a fer2013.csv whose pixels are
    synthetic faces drawn for each row's plurality emotion."""
    votes = pd.read_csv(VOTES)
    rows = pd.concat([votes[votes.Usage == usage].head(n) for usage, n in per_split.items()])
    counts = rows[VOTE_COLUMNS].to_numpy()
    emotion = counts[:, : len(EMOTIONS)].argmax(axis=1)
    rng = np.random.default_rng(0)
    pixels = [" ".join(map(str, f.reshape(-1))) for f in _faces_for(emotion, rng)]
    root.mkdir(parents=True, exist_ok=True)
    rows.to_csv(root / "fer2013new.csv", index=False)
    fer_labels = np.array([FERPLUS_TO_FER2013[int(e)] for e in emotion])
    wrong = rng.random(len(fer_labels)) < 0.25  # FER2013's own labels disagree with FER+ often
    fer_labels[wrong] = (fer_labels[wrong] + rng.integers(1, 7, wrong.sum())) % 7
    pd.DataFrame({"emotion": fer_labels, "pixels": pixels, "Usage": rows.Usage.to_numpy()}).to_csv(
        root / "fer2013.csv", index=False
    )
    return root


def _faces_for(emotion: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    from auditor.datasets.synth_faces import JITTER, PROTOTYPES, draw_face

    out = []
    for e in emotion:
        expr = PROTOTYPES[SYNTH_OF_EMOTION[int(e)]] + rng.normal(0, JITTER, PROTOTYPES.shape[1])
        out.append(draw_face(expr, rng, 48).mean(axis=2).astype(np.uint8))
    return out


def save_face(path: Path, label: int, seed: int, size: int = 64, drawn: int | None = None) -> None:
    """A synthetic face of expression `label` saved as a size x size image; drawn at `drawn` px
    (default: size) and resized, which makes large faces several times cheaper to draw."""
    from auditor.datasets.synth_faces import JITTER, PROTOTYPES, draw_face

    rng = np.random.default_rng(seed)
    expr = PROTOTYPES[label % len(CLASSES)] + rng.normal(0, JITTER, PROTOTYPES.shape[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    face = Image.fromarray(draw_face(expr, rng, drawn or size))
    (face if face.size == (size, size) else face.resize((size, size), Image.BILINEAR)).save(path)


AFFECTNET_HEADER = (
    "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,"
    "valence,arousal"
)
AFFECTNET_LISTS = {"train": "training.csv", "test": "validation.csv"}


def affectnet_official_faces(codes: dict[str, list[int]]) -> list[tuple[str, str, int, int]]:
    """(split, path under Manually_Annotated_Images, expression code, face seed) of every image
    of `write_affectnet_official`, train then test, in file-list order. The seeds are unique:
    the test seeds start at 10,000 or after the last train seed, whichever is larger."""
    first_seed = {"train": 0, "test": max(10_000, len(codes["train"]))}
    return [
        (split, f"{i % 3 + 1}/{split}_{i:04d}.jpg", code, first_seed[split] + i)
        for split in AFFECTNET_LISTS
        for i, code in enumerate(codes[split])
    ]


def write_affectnet_lists(root: Path, codes: dict[str, list[int]], size: int = 80) -> Path:
    """AffectNet's two file lists of the faces of `affectnet_official_faces`, each face box the
    middle 80% of its size x size image (8,8,64,64 at 80 px)."""
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    m = size // 10
    box = f"{m},{m},{size - 2 * m},{size - 2 * m}"
    faces = affectnet_official_faces(codes)
    for split, name in AFFECTNET_LISTS.items():
        lines = [AFFECTNET_HEADER] + [
            f'{rel},{box},"1;2;3;4",{code},0.1,-0.2' for s, rel, code, _ in faces if s == split
        ]
        (lists / name).write_text("\n".join(lines) + "\n")
    return root


def write_affectnet_official(root: Path, codes: dict[str, list[int]], size: int = 80) -> Path:
    for _split, rel, code, seed in affectnet_official_faces(codes):
        save_face(root / "Manually_Annotated_Images" / rel, code, seed=seed, size=size)
    return write_affectnet_lists(root, codes, size)


def write_affectnet_variant(root: Path, codes: dict[str, list[int]]) -> Path:
    for split, folder in (("train", "train_set"), ("test", "val_set")):
        (root / folder / "annotations").mkdir(parents=True, exist_ok=True)
        for i, code in enumerate(codes[split]):
            save_face(root / folder / "images" / f"{i}.jpg", code, seed=i)
            np.save(root / folder / "annotations" / f"{i}_exp.npy", np.array(str(code)))
    return root
