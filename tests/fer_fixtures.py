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
SYNTH_OF_EMOTION = {e: CLASSES.index(n) for e, n in enumerate(
    ["Neutral", "Happiness", "Surprise", "Sadness", "Anger", "Disgust", "Fear", "Disgust"])}  # fmt: skip


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
    pd.DataFrame({"emotion": fer_labels, "pixels": pixels,
                  "Usage": rows.Usage.to_numpy()}).to_csv(root / "fer2013.csv", index=False)  # fmt: skip
    return root


def _faces_for(emotion: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    from auditor.datasets.synth_faces import JITTER, PROTOTYPES, draw_face

    out = []
    for e in emotion:
        expr = PROTOTYPES[SYNTH_OF_EMOTION[int(e)]] + rng.normal(0, JITTER, PROTOTYPES.shape[1])
        out.append(draw_face(expr, rng, 48).mean(axis=2).astype(np.uint8))
    return out


def save_face(path: Path, label: int, seed: int, size: int = 64) -> None:
    from auditor.datasets.synth_faces import JITTER, PROTOTYPES, draw_face

    rng = np.random.default_rng(seed)
    expr = PROTOTYPES[label % len(CLASSES)] + rng.normal(0, JITTER, PROTOTYPES.shape[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(draw_face(expr, rng, size)).save(path)


def write_affectnet_official(root: Path, codes: dict[str, list[int]]) -> Path:
    header = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "training.csv"), ("test", "validation.csv")):
        lines = [header]
        for i, code in enumerate(codes[split]):
            rel = f"{i % 3 + 1}/{split}_{i:04d}.jpg"
            save_face(
                root / "Manually_Annotated_Images" / rel,
                code,
                seed=i + (0 if split == "train" else 10_000),
                size=80,
            )
            lines.append(f'{rel},8,8,64,64,"1;2;3;4",{code},0.1,-0.2')
        (lists / name).write_text("\n".join(lines) + "\n")
    return root


def write_affectnet_variant(root: Path, codes: dict[str, list[int]]) -> Path:
    for split, folder in (("train", "train_set"), ("test", "val_set")):
        (root / folder / "annotations").mkdir(parents=True, exist_ok=True)
        for i, code in enumerate(codes[split]):
            save_face(root / folder / "images" / f"{i}.jpg", code, seed=i)
            np.save(root / folder / "annotations" / f"{i}_exp.npy", np.array(str(code)))
    return root
