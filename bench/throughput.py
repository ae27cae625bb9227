"""Training throughput (a script, not a test): our engine against a reference-style loop and
the model-only ceiling, measured in one run on the same machine.

Each loop trains the same method, model, image size and batch size on the same images for the
same number of samples, after one warm-up epoch; the three are interleaved and repeated
(`--repeats`, median reported) because this machine's speed drifts between minutes:

- ours: `auditor.training.engine.train`: uint8 tensors in memory, gathered by index, normalised
  and augmented (flip + erasing) in batch on the device, every sample's signals recorded every
  step (loss, margin, p_given, correct and the method's own);
- ceiling: the same model and `training_step` (its augmentation included) on batches already
  normalised in memory: no gather, no epoch order, no signal recording;
- reference: the way the FER repositories feed it: a Dataset that opens and decodes every image
  file with PIL per sample, torchvision transforms (Resize, RandomHorizontalFlip, ToTensor,
  Normalize, RandomErasing), EAC's second (mirrored) view, two DataLoader workers; the method's
  step then receives the augmented batch (its own augmentation switched off), so the model work
  is the same.

Settings: the demo (Fashion-MNIST, 28 px, resnet-small, batch 256; images written as PNG files
for the reference) with ce and eac, and ResNet-18 at 112 px on synthetic faces in the RAF-DB
layout (100 px JPEG files, resized), batch 64, eac. Decoding into our tensor cache is a one-time
cost per dataset and image size (cached on disk), not part of training throughput; it is
printed separately.

On a GPU (`--device cuda`) ours and the ceiling run as `audit run` would there (bf16 autocast
unless `--amp off`, `--compile` when asked, the uint8 cache on the GPU); the reference runs as
the repositories do (float32, pinned DataLoader batches copied to the GPU). Clocks are read
after `torch.cuda.synchronize()`.

    .venv/bin/python bench/throughput.py [--quick]
    .venv/bin/python bench/throughput.py --device cuda --demo-images 30000 --faces 3000 --workers 8
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from auditor.datasets import load_dataset
from auditor.datasets.cache import load_pixels
from auditor.datasets.registry import get_entry, load_registry
from auditor.datasets.table import stratified_subset
from auditor.synth_faces_folder import write_rafdb_layout
from auditor.training.augment import Augmenter, Normalizer
from auditor.training.engine import TrainConfig, resolve_amp, resolve_device, train
from auditor.training.step import optimisation_step
from methods import build_method
from methods.backbones import build_backbone
from methods.base import Batch, Method


class NoAugment:
    """The method's own augmentation switched off: the batch arrives augmented."""

    def random_hflip(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def random_erase(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def pixel_noise(self, x: torch.Tensor, std: float, p: float) -> torch.Tensor:
        return x

    def flip_or_noise(self, x: torch.Tensor, std: float) -> torch.Tensor:
        return x

    def permutation(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randperm(n, device=device)


class FileDataset(Dataset):
    """Per-sample decode + torchvision transforms, returning the image and its mirror (EAC)."""

    def __init__(
        self, files: list[Path], labels: np.ndarray, size: int, norm: Normalizer, gray: bool
    ):
        self.files, self.labels, self.gray = files, labels, gray
        self.transform = transforms.Compose(
            [
                transforms.Resize((size, size)),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(norm.mean, norm.std),
                transforms.RandomErasing(scale=(0.02, 0.25)),
            ]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        with Image.open(self.files[i]) as image:
            image = image.convert("L" if self.gray else "RGB")
            x = self.transform(image)
        return x, transforms.functional.hflip(x), int(self.labels[i])


@dataclass(frozen=True)
class Machine:
    device: str  # "cpu" or "cuda"
    amp: bool  # ours and the ceiling under bf16 autocast
    compile: bool  # ours and the ceiling with a compiled backbone
    workers: int  # DataLoader workers of the reference loop

    def clock(self) -> float:
        """perf_counter once the device has finished what was queued."""
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()


def make_method(name: str, backbone: str, channels: int, classes: int, seed: int = 0) -> Method:
    torch.manual_seed(seed)
    return build_method(name, build_backbone(backbone, channels), classes)


def optimiser(method: Method) -> torch.optim.Optimizer:
    return torch.optim.Adam(method.parameters(), lr=1e-3, weight_decay=1e-4)


def step(method: Method, opt: torch.optim.Optimizer, batch: Batch, aug, amp: bool) -> None:
    optimisation_step(method, opt, list(method.parameters()), batch, aug, amp)


def ours(name, backbone, pixels, labels, norm, batch, epochs, m: Machine) -> float:
    method = make_method(name, backbone, pixels.shape[1], int(labels.max()) + 1)
    config = TrainConfig(epochs=1, batch_size=batch, device=m.device, amp=m.amp, compile=m.compile)
    train(method, pixels, torch.from_numpy(labels), None, None, norm, config, final_pass=False)
    config = TrainConfig(
        epochs=epochs, batch_size=batch, device=m.device, seed=1, amp=m.amp, compile=m.compile
    )
    start = m.clock()
    train(method, pixels, torch.from_numpy(labels), None, None, norm, config, final_pass=False)
    return epochs * len(labels) / (m.clock() - start)


def ceiling(name, backbone, pixels, labels, norm, batch, epochs, m: Machine) -> float:
    method = make_method(name, backbone, pixels.shape[1], int(labels.max()) + 1)
    method.train().to(m.device).to(memory_format=torch.channels_last)
    if m.compile:
        method.backbone.compile()
    opt = optimiser(method)
    aug = Augmenter(torch.Generator(device=m.device).manual_seed(0), normalizer=norm)
    y = torch.from_numpy(labels).to(m.device)
    x_all = norm(pixels.to(m.device)).contiguous(memory_format=torch.channels_last)
    chunks = [
        (
            x_all[s : s + batch],
            y[s : s + batch],
            torch.arange(s, min(s + batch, len(y)), device=m.device),
        )
        for s in range(0, len(y), batch)
    ]
    for x, yb, idx in chunks:  # warm-up epoch
        step(method, opt, Batch(x, yb, idx, 0), aug, m.amp)
    start = m.clock()
    for _ in range(epochs):
        for x, yb, idx in chunks:
            step(method, opt, Batch(x, yb, idx, 0), aug, m.amp)
    return epochs * len(labels) / (m.clock() - start)


def reference(name, backbone, files, labels, norm, size, gray, batch, epochs, m: Machine) -> float:
    channels = 1 if gray else 3
    method = make_method(name, backbone, channels, int(labels.max()) + 1)
    method.train().to(m.device).to(memory_format=torch.channels_last)
    opt = optimiser(method)
    loader = DataLoader(
        FileDataset(files, labels, size, norm, gray),
        batch_size=batch,
        shuffle=True,
        num_workers=m.workers,
        drop_last=False,
        persistent_workers=True,
        pin_memory=m.device == "cuda",
    )

    def one_epoch() -> None:
        for x1, _x2, y in loader:
            x1 = x1.to(m.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(m.device, non_blocking=True)
            idx = torch.arange(len(y), device=m.device)
            step(method, opt, Batch(x1, y, idx, 0), NoAugment(), amp=False)

    one_epoch()  # warm-up (and the workers' start)
    start = m.clock()
    for _ in range(epochs):
        one_epoch()
    return epochs * len(labels) / (m.clock() - start)


def write_pngs(pixels: torch.Tensor, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, image in enumerate(pixels.numpy()):
        path = folder / f"{i:05d}.png"
        Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(path)
        files.append(path)
    return files


def setting(
    label, table, size, backbone, batch, methods, epochs, work: Path, repeats: int, m: Machine
) -> list[str]:
    t = time.perf_counter()
    pixels, failures = load_pixels(table, size)
    decode_s = time.perf_counter() - t
    assert not failures
    labels = table.labels.astype(np.int64)
    norm = Normalizer.fit(pixels)
    gray = pixels.shape[1] == 1
    if hasattr(table.images, "paths"):
        files = list(table.images.paths)
    else:
        files = write_pngs(pixels, work / label)
    lines = [
        f"{label}: {len(labels)} images, {backbone} at {size} px, batch {batch}, "
        f"{epochs} timed epochs after one warm-up, median of {repeats} interleaved repeats; "
        f"tensor cache {decode_s:.1f} s (once)"
    ]
    for name in methods:
        measured: dict[str, list[float]] = {"reference": [], "ceiling": [], "ours": []}
        for _ in range(repeats):  # interleaved, so a slow spell of the machine hits all three
            measured["reference"].append(
                reference(name, backbone, files, labels, norm, size, gray, batch, epochs, m)
            )
            measured["ceiling"].append(
                ceiling(name, backbone, pixels, labels, norm, batch, epochs, m)
            )
            measured["ours"].append(ours(name, backbone, pixels, labels, norm, batch, epochs, m))
        r, c, o = (float(np.median(measured[k])) for k in ("reference", "ceiling", "ours"))
        each = np.array(measured["ours"]) / np.array(measured["ceiling"])  # per repeat
        lines.append(
            f"  {name:4s} ours {o:7.1f} img/s | ceiling {c:7.1f} | reference {r:7.1f} | "
            f"ours / ceiling {o / c:.3f} (repeats {each.min():.2f}-{each.max():.2f}) | "
            f"ours / reference {o / r:.2f}x"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, for a smoke run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (median)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--amp", choices=("auto", "bf16", "off"), default="auto")
    parser.add_argument(
        "--compile", action="store_true", help="compile the backbone (ours, ceiling)"
    )
    parser.add_argument("--workers", type=int, default=2, help="the reference's DataLoader workers")
    parser.add_argument("--demo-images", type=int, help="demo training images (default 4096)")
    parser.add_argument("--faces", type=int, help="synthetic face images (default 320)")
    parser.add_argument("--face-batch", type=int, default=64, help="ResNet-18 batch size")
    parser.add_argument("--only", choices=("demo", "faces"), help="run one of the two settings")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    device = resolve_device(args.device)
    m = Machine(device, resolve_amp(args.amp, device), args.compile, args.workers)
    registry = load_registry()
    demo = load_dataset(get_entry("demo", registry))
    train_rows = np.flatnonzero(demo.split == "train")
    n_demo = args.demo_images or (1024 if args.quick else 4096)
    demo = demo.select(train_rows[stratified_subset(demo.labels[train_rows], n_demo, seed=0)])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        where = torch.cuda.get_device_name() if device == "cuda" else "CPU"
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}; ours and "
            f"ceiling: {'bf16 autocast' if m.amp else 'float32'}"
            f"{', compiled' if m.compile else ''}; reference: float32, {m.workers} workers",
            flush=True,
        )
        report = []
        if args.only in (None, "demo"):
            report += setting(
                "demo", demo, 28, "resnet-small", 256, ["ce", "eac"], 2, work, args.repeats, m
            )
        if args.only in (None, "faces"):
            n_faces = args.faces or (64 if args.quick else 320)
            faces_root = write_rafdb_layout(work / "RAF", n_train=n_faces, n_test=7, seed=0)
            faces = load_dataset(get_entry("raf-db", registry), root=faces_root)
            faces = faces.select(np.flatnonzero(faces.split == "train"))
            report += setting(
                "faces", faces, 112, "resnet18", args.face_batch, ["eac"], 1, work, args.repeats, m
            )
    print("\n" + "\n".join(report))


if __name__ == "__main__":
    main()
