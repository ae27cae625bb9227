"""What runs inside each stage's own process of bench/scale.py (`python bench/scale_stages.py
NAME JSON`, the stage's keyword arguments as JSON): it prints `RESULT <json>` (images, seconds,
...), read by `process_memory.result_of`. The stages are described in bench/scale.py.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.fer_fixtures: the AffectNet layout writer

FACE_CHUNK = 500  # faces written by one task of the generator; a finished chunk is not redone


def test_count(n_train: int) -> int:
    """Test (validation) faces beside n_train training faces: AffectNet's 3,500 at full size."""
    return min(3500, max(70, n_train // 80))


def affectnet_codes(n_train: int, n_test: int, seed: int = 0) -> dict[str, list[int]]:
    """Expression codes 0..6 (the 7 classes the `affectnet` entry keeps), balanced, shuffled
    (so any prefix of the training rows is balanced too)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {
        "train": rng.permutation(np.arange(n_train) % 7).tolist(),
        "test": (np.arange(n_test) % 7).tolist(),
    }


def train_table(root: str, n: int):
    """The first `n` training rows of the generated AffectNet folder, as `audit run` reads it."""
    import numpy as np

    from auditor.datasets import load_dataset
    from auditor.datasets.registry import get_entry, load_registry

    table = load_dataset(get_entry("affectnet", load_registry()), root=root)
    return table.select(np.flatnonzero(table.split == "train")[:n])


def _write_faces(job: tuple[str, int, list[tuple[str, str, int, int]], int]) -> int:
    from tests.fer_fixtures import save_face

    root, size, faces, chunk = job
    for _split, rel, code, seed in faces:
        save_face(
            Path(root) / "Manually_Annotated_Images" / rel,
            code,
            seed=seed,
            size=size,
            drawn=size // 2,
        )  # drawn at half size: 3.5x cheaper
    (Path(root) / ".chunks" / f"{chunk}.done").touch()
    return len(faces)


def stage_generate(root: str, n: int, size: int, workers: int) -> dict:
    import multiprocessing

    from tests.fer_fixtures import affectnet_official_faces, write_affectnet_lists

    codes = affectnet_codes(n, test_count(n))
    faces = affectnet_official_faces(codes)
    (Path(root) / ".chunks").mkdir(parents=True, exist_ok=True)
    jobs = [
        (root, size, faces[s : s + FACE_CHUNK], k)
        for k, s in enumerate(range(0, len(faces), FACE_CHUNK))
        if not (Path(root) / ".chunks" / f"{k}.done").exists()
    ]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        written = sum(pool.imap_unordered(_write_faces, jobs))
    write_affectnet_lists(Path(root), codes, size)
    return {"images": written, "seconds": time.perf_counter() - start, "total": len(faces)}


def stage_build(root: str, n: int, size: int, workers: int) -> dict:
    from auditor.datasets.cache import build_cache

    table = train_table(root, n)
    start = time.perf_counter()
    build_cache(table, size, workers)
    return {"images": len(table), "seconds": time.perf_counter() - start}


def stage_read(root: str, n: int, rows: int, size: int, batch: int) -> dict:
    import torch

    from auditor.datasets.cache import load_pixels
    from auditor.datasets.pixel_map import PixelMap
    from auditor.training.feed import batches

    pixels, _ = load_pixels(train_table(root, n), size, mode="disk")  # the cache exists
    assert isinstance(pixels, PixelMap), type(pixels)
    order = list(torch.randperm(rows, generator=torch.Generator().manual_seed(0)).split(batch))
    start, read = time.perf_counter(), 0
    for raw in batches(pixels, order, order):
        read += len(raw)
    return {"images": read, "seconds": time.perf_counter() - start}


def stage_train(
    root: str,
    n: int,
    size: int,
    mode: str,
    backbone: str,
    method: str,
    batch: int,
    workers: int,
    prepare: bool = False,
) -> dict:
    import torch

    from auditor.datasets.cache import build_cache, load_pixels
    from auditor.training.augment import Normalizer
    from auditor.training.engine import TrainConfig, train
    from methods import build_method
    from methods.backbones import build_backbone

    table = train_table(root, n)
    if prepare:
        build_cache(table, size, workers)
        return {}
    pixels, _ = load_pixels(table, size, workers, mode=mode)
    torch.manual_seed(0)
    model = build_method(method, build_backbone(backbone, 3), table.num_classes)
    config = TrainConfig(epochs=1, batch_size=batch, device="cpu", seed=0)
    labels = torch.from_numpy(table.labels)
    start = time.perf_counter()
    train(model, pixels, labels, None, None, Normalizer.imagenet(3), config, final_pass=False)
    return {
        "images": len(table),
        "seconds": time.perf_counter() - start,
        "pixels": type(pixels).__name__,
    }


STAGE_FUNCTIONS = {
    "generate": stage_generate,
    "build": stage_build,
    "read": stage_read,
    "train": stage_train,
}


if __name__ == "__main__":
    result = STAGE_FUNCTIONS[sys.argv[1]](**json.loads(sys.argv[2]))
    print("RESULT " + json.dumps(result), flush=True)
