"""The image cache streams: built by several processes straight into its file, resumed after an
interruption, never used when partial or damaged, read by batch from the file when it does not
fit in memory (under an address-space limit smaller than the cache), and a training from the file
is the training from memory."""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from auditor.datasets import cache
from auditor.datasets.cache import CHUNK, build_cache, load_pixels, part
from auditor.datasets.decode import UndecodableImage, decode_file
from auditor.datasets.pixel_map import PixelMap, write_header
from auditor.datasets.table import FileImages, SampleTable
from auditor.resources import cgroup_room
from auditor.training.augment import Normalizer
from auditor.training.engine import TrainConfig, train
from auditor.training.feed import batches
from methods import build_method
from methods.backbones import build_backbone

REPO = Path(__file__).resolve().parents[1]


def write_images(root: Path, n: int, side: int = 24, bad: tuple[int, ...] = ()) -> None:
    """n JPEG files of random colour blocks (rows listed in `bad` are not images)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        path = root / f"{i:06d}.jpg"
        if i in bad:
            path.write_bytes(b"not an image" if i % 2 else b"")
            continue
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((side, side), Image.NEAREST).save(path, quality=90)


def folder_table(root: Path) -> SampleTable:
    """Every file of `root` as a training sample of a two-class dataset named 'cachetest'."""
    paths = sorted(Path(root).iterdir())
    n = len(paths)
    return SampleTable(
        name="cachetest",
        class_names=["a", "b"],
        sample_ids=np.array([p.name for p in paths]),
        filepaths=np.array([str(p) for p in paths]),
        labels=np.arange(n) % 2,
        split=np.array(["train"] * n),
        images=FileImages(paths),
    )


def decoded(table: SampleTable, size: int) -> np.ndarray:
    """The images decoded one by one in this process: what every cache must hold."""
    out = np.zeros((len(table), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(table.images.paths):
        with contextlib.suppress(UndecodableImage):
            out[i] = decode_file(path, size)
    return out


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("AUDIT_CACHE_DIR", str(folder))
    return folder


def test_a_parallel_build_holds_what_one_process_decodes(tmp_path, cache_dir):
    write_images(tmp_path / "img", 2 * CHUNK + 37, bad=(5, 300))
    table = folder_table(tmp_path / "img")
    pixels, failures = load_pixels(table, 20, workers=2, mode="memory")
    assert sorted(failures) == [5, 300] and "empty file" in failures[300]
    assert np.array_equal(pixels.numpy(), decoded(table, 20))
    # the finished cache: the file, its marker; no progress file, no partial file left
    names = sorted(p.name.split("-")[-1] for p in cache_dir.iterdir())
    assert names == ["20.done.json", "20.lock", "20.npy"]
    assert np.array_equal(np.load(next(cache_dir.glob("*.npy"))), pixels.numpy())  # a plain .npy


def test_a_map_reads_any_rows_as_memory_holds_them(tmp_path, cache_dir):
    write_images(tmp_path / "img", 300)
    table = folder_table(tmp_path / "img")
    memory, _ = load_pixels(table, 16, mode="memory")
    disk, _ = load_pixels(table, 16, mode="disk")
    assert isinstance(disk, PixelMap) and disk.shape == memory.shape and len(disk) == 300
    rows = torch.tensor([299, 3, 4, 5, 0, 150, 4])  # unsorted, runs, a repeat
    assert torch.equal(disk[rows], memory[rows])
    assert torch.equal(disk[10:20], memory[10:20])
    subset = disk.take(np.arange(300) % 3 == 0)  # lazy: nothing read
    assert torch.equal(subset[torch.tensor([1, 0])], memory[torch.tensor([3, 0])])
    assert Normalizer.fit(disk) == Normalizer.fit(memory)


def test_auto_keeps_a_cache_in_memory_only_when_it_fits(tmp_path, cache_dir, monkeypatch):
    write_images(tmp_path / "img", 40)
    table = folder_table(tmp_path / "img")
    nbytes = 40 * 3 * 16 * 16
    monkeypatch.setattr(cache, "memory_budget", lambda: 2 * nbytes)
    assert isinstance(load_pixels(table, 16)[0], torch.Tensor)
    monkeypatch.setattr(cache, "memory_budget", lambda: 2 * nbytes - 2)
    assert isinstance(load_pixels(table, 16)[0], PixelMap)


BUILD = (
    "import sys; from tests.test_pixel_cache import folder_table; "
    "from auditor.datasets.cache import build_cache; build_cache(folder_table(sys.argv[1]), 96, 1)"
)


@pytest.mark.slow
def test_an_interrupted_build_resumes_where_it_stopped(tmp_path, cache_dir):
    write_images(tmp_path / "img", 40 * CHUNK, side=64)
    table = folder_table(tmp_path / "img")
    env = {**os.environ, "AUDIT_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", BUILD, str(tmp_path / "img")], env=env, cwd=REPO)
    progress = lambda: list(cache_dir.glob("*.progress"))  # noqa: E731
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if progress() and len(progress()[0].read_text().splitlines()) >= 2:  # header + a chunk
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(cache_dir.glob("*.done.json")), "the build finished before it was killed"
    recorded = len(progress()[0].read_text().splitlines()) - 1
    assert 0 < recorded < 40
    stem = cache.cache_stem(table, 96)
    assert not part(stem, ".npy").exists()  # an unfinished build is never under the final name
    with pytest.raises(FileNotFoundError):
        PixelMap(part(stem, ".npy"))

    message = io.StringIO()
    with contextlib.redirect_stderr(message):
        pixels, failures = load_pixels(table, 96, workers=2, mode="memory")
    assert (
        f"{recorded * CHUNK:,} of {40 * CHUNK:,} images were decoded before" in message.getvalue()
    )
    assert failures == {} and np.array_equal(pixels.numpy(), decoded(table, 96))


@pytest.mark.parametrize("damage", ["truncated", "no marker", "garbage marker", "wrong shape"])
def test_a_partial_or_damaged_cache_is_never_used(tmp_path, cache_dir, damage):
    write_images(tmp_path / "img", 50)
    table = folder_table(tmp_path / "img")
    stem = build_cache(table, 16)
    if damage == "truncated":
        os.truncate(part(stem, ".npy"), part(stem, ".npy").stat().st_size - 1)
    elif damage == "no marker":
        part(stem, ".done.json").unlink()
    elif damage == "garbage marker":
        part(stem, ".done.json").write_text("{not json")
    else:
        part(stem, ".done.json").write_text(json.dumps({"shape": [49, 3, 16, 16], "failures": {}}))
    pixels, failures = load_pixels(table, 16, mode="disk")  # rebuilt, not read
    assert failures == {} and np.array_equal(pixels[:].numpy(), decoded(table, 16))
    assert json.loads(part(stem, ".done.json").read_text())["shape"] == [50, 3, 16, 16]


def test_training_from_the_map_is_training_from_memory(tmp_path, cache_dir):
    write_images(tmp_path / "img", 96)
    table = folder_table(tmp_path / "img")
    labels = torch.from_numpy(table.labels)
    results = []
    for mode in ("memory", "disk"):
        pixels, _ = load_pixels(table, 16, mode=mode)
        torch.manual_seed(0)
        method = build_method("ce", build_backbone("resnet-small", 3), 2)
        config = TrainConfig(epochs=2, batch_size=32, device="cpu")
        results.append(train(method, pixels, labels, None, None, Normalizer.fit(pixels), config))
    memory, disk = results
    assert np.array_equal(memory.probs, disk.probs)
    for name, values in memory.signals.items():
        assert np.array_equal(values, disk.signals[name]), name


def test_batches_from_the_map_come_in_order(tmp_path, cache_dir):
    write_images(tmp_path / "img", 100)
    table = folder_table(tmp_path / "img")
    disk, _ = load_pixels(table, 16, mode="disk")
    memory, _ = load_pixels(table, 16, mode="memory")
    rows = list(torch.randperm(100, generator=torch.Generator().manual_seed(0)).split(7))
    for got, want in zip(batches(disk, rows, rows), rows, strict=True):
        assert torch.equal(got, memory[want])


LIMITED = """
import resource, sys, zlib
import numpy as np
from tests.test_pixel_cache import folder_table
from auditor.datasets.cache import load_pixels
from auditor.training.feed import batches
import torch

status = dict(line.split(":", 1) for line in open("/proc/self/status"))
used = int(status["VmSize"].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (used + int(sys.argv[2]), resource.RLIM_INFINITY))
pixels, failures = load_pixels(folder_table(sys.argv[1]), int(sys.argv[3]))
print(type(pixels).__name__)
rows = list(torch.randperm(len(pixels)).split(64))
sums = np.zeros(len(pixels), dtype=np.int64)
for idx, raw in zip(rows, batches(pixels, rows, rows)):
    sums[idx.numpy()] = raw.numpy().reshape(len(idx), -1).sum(1, dtype=np.int64)
print(zlib.crc32(sums.tobytes()))
"""


@pytest.mark.slow
def test_a_cache_larger_than_the_memory_limit_is_built_and_read(tmp_path, cache_dir):
    """Under an address-space limit 400 MB above what the process holds after its imports, a
    cache of 2,000 images at 320 px (614 MB) is built by two processes and read whole, batch by
    batch. Before the cache streamed, its build allocated the whole array: MemoryError. (The
    room is not smaller because each thread, the build pool's and the batch reader's, reserves
    a 64 MB malloc arena of address space, little of it resident.)"""
    write_images(tmp_path / "img", 2000, side=32)
    table = folder_table(tmp_path / "img")
    want = decoded(table, 320).reshape(2000, -1).sum(1, dtype=np.int64)
    env = {**os.environ, "AUDIT_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(REPO)}
    args = [str(tmp_path / "img"), str(400 * 2**20), "320"]
    result = subprocess.run(
        [sys.executable, "-c", LIMITED, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    kind, checksum = result.stdout.split()
    assert kind == "PixelMap" and int(checksum) == zlib.crc32(want.tobytes())


def test_a_torn_progress_record_keeps_the_chunks_before_it(tmp_path, cache_dir):
    write_images(tmp_path / "img", 3 * CHUNK)
    table = folder_table(tmp_path / "img")
    stem = cache.cache_stem(table, 16)
    cache_dir.mkdir()
    shape = [3 * CHUNK, 3, 16, 16]
    write_header(part(stem, ".partial.npy"), tuple(shape))
    head = json.dumps({"shape": shape, "chunk": CHUNK})
    record = json.dumps({"chunk": 1, "failures": {}})
    part(stem, ".progress").write_text(f'{head}\n{record}\n{{"chunk": 2, "fai')
    done, failures = cache.read_progress(part(stem, ".progress"), shape, part(stem, ".partial.npy"))
    assert done == {1} and failures == {}
    assert part(stem, ".progress").read_text() == f"{head}\n{record}\n"  # the torn line is gone


def test_progress_without_its_partial_file_is_not_trusted(tmp_path, cache_dir):
    """A progress file whose partial file was deleted (say, to free space) describes no bytes:
    the build starts afresh instead of trusting its records over a new, blank file."""
    write_images(tmp_path / "img", 2 * CHUNK)
    table = folder_table(tmp_path / "img")
    stem = cache.cache_stem(table, 16)
    cache_dir.mkdir()
    shape = [2 * CHUNK, 3, 16, 16]
    head = json.dumps({"shape": shape, "chunk": CHUNK})
    part(stem, ".progress").write_text(
        f"{head}\n" + json.dumps({"chunk": 0, "failures": {}}) + "\n"
    )
    pixels, _ = load_pixels(table, 16, mode="memory")
    assert np.array_equal(pixels.numpy(), decoded(table, 16))


def test_an_empty_selection_reads_nothing(tmp_path, cache_dir):
    write_images(tmp_path / "img", 10)
    disk, _ = load_pixels(folder_table(tmp_path / "img"), 16, mode="disk")
    assert disk[[]].shape == (0, 3, 16, 16) and disk.take([])[:].shape == (0, 3, 16, 16)


def test_cgroup_room_is_the_limit_less_what_cannot_be_reclaimed(tmp_path):
    (tmp_path / "memory.max").write_text("1000000000\n")
    (tmp_path / "memory.current").write_text("600000000\n")
    (tmp_path / "memory.stat").write_text("anon 400000000\ninactive_file 100000000\n")
    unlimited = tmp_path / "parent"
    unlimited.mkdir()
    (unlimited / "memory.max").write_text("max\n")
    assert cgroup_room([tmp_path, unlimited]) == [500_000_000]
