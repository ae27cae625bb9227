"""Hostile checkpoints (issue 32): `--weights` files and a run's own checkpoints are checked by
one set of functions (`auditor.checkpoint_files`): the sizes a zip declares before `torch.load`,
then every tensor (dense, strided, real-valued, each value stored once); `--weights` loads only
floating tensors into floating weights and, even with `--allow-partial-weights`, never nothing;
a run folder's JSON is UTF-8 only. In-process, many cases per test; the real CLI once for the
`--allow-partial-weights` case that used to train from scratch with exit 0. The resumes of
damaged run checkpoints, through the CLI, are in test_damaged_runs.py."""

from __future__ import annotations

import pickletools
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from auditor.damage import DamagedRunFolder, load_checkpoint
from auditor.errors import UserError
from auditor.outputs.run_readers import MANIFEST, read_json
from methods.backbones import build_backbone
from methods.weights import load_backbone_weights
from tests.conftest import run_cli
from tests.hostile import QUICK, csv_dataset, refused
from tests.test_run_folder_shapes import training_setup

# torch.load's note on the sparse tensors these tests save on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")


def declare_size(path: Path, size: int) -> None:
    """Rewrite the zip directory of `path` so that its largest entry declares `size` bytes (the
    bytes stay as they are): a small file asking for gigabytes."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    name, at = info.filename.encode(), 0
    while True:  # its entry in the central directory: signature, then the name at +46
        at = raw.index(b"PK\x01\x02", at + 1)
        length = struct.unpack("<H", raw[at + 28 : at + 30])[0]
        if raw[at + 46 : at + 46 + length] == name:
            break
    raw[at + 24 : at + 28] = struct.pack("<I", size)
    raw[info.header_offset + 22 : info.header_offset + 26] = struct.pack("<I", size)
    path.write_bytes(bytes(raw))


def declare_storage(path: Path, numel: int) -> None:
    """Rewrite the pickle of `path` so that its first storage declares `numel` elements while its
    record keeps its bytes (a storage far larger than the file)."""
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    name = next(n for n in entries if n.endswith("/data.pkl"))
    ops = list(pickletools.genops(entries[name]))
    persistent = next(i for i, (op, _, _) in enumerate(ops) if op.name == "BINPERSID")
    _, _, start = ops[persistent - 3]  # ('storage', type, key, location, numel) TUPLE BINPUT
    end = ops[persistent - 2][2]
    data = entries[name]
    entries[name] = data[:start] + b"J" + struct.pack("<i", numel) + data[end:]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for entry, content in entries.items():
            archive.writestr(entry, content)


def stride0(shape: torch.Size, numel: int | None = None) -> torch.Tensor:
    return torch.zeros(1).expand(*(shape if numel is None else (numel,)))


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return build_backbone("resnet-small", 3).state_dict()


FIRST = "stem.0.weight"
WEIGHTS_CASES: list[tuple[str, Callable[[dict], object], str]] = [
    ("sparse", lambda s: s | {FIRST: s[FIRST].to_sparse()}, "is a sparse_coo tensor"),
    ("meta", lambda s: s | {FIRST: s[FIRST].to("meta")}, "is a meta tensor"),
    ("stride-0", lambda s: s | {FIRST: stride0(s[FIRST].shape)}, "(a stride-0 view)"),
    ("10^12", lambda s: s | {FIRST: stride0(s[FIRST].shape, 10**12)}, "has 1000000000000 ele"),
    ("complex", lambda s: s | {FIRST: s[FIRST].to(torch.complex64)}, "is complex64, not real"),
    ("no match", lambda s: {"head.weight": torch.zeros(3)}, "none of its tensors fits"),
    ("other", lambda s: build_backbone("resnet18", 3).state_dict(), "none of its tensors fits"),
]


@pytest.mark.parametrize("partial", [False, True], ids=["strict", "partial"])
def test_weights_that_cannot_load_are_refused_with_one_sentence(state, tmp_path, partial):
    """Each case with and without --allow-partial-weights (the flag lifts none of these)."""
    for name, change, needle in WEIGHTS_CASES:
        path = tmp_path / f"{name}.pth"
        torch.save(change(dict(state)), path)
        with pytest.raises(UserError) as err:
            load_backbone_weights(
                str(path), build_backbone("resnet-small", 3), "resnet-small", allow_partial=partial
            )
        message = str(err.value)
        assert message.startswith(f"--weights {path}: ") and needle in message, (name, message)
        assert "\n" not in message, message
    (tmp_path / "notes.txt").write_text("these are not weights\n" * 20)
    (tmp_path / "link.pth").symlink_to(tmp_path / "notes.txt")
    with pytest.raises(UserError, match=r"link.pth: not a PyTorch checkpoint \("):
        load_backbone_weights(str(tmp_path / "link.pth"), build_backbone("resnet-small", 3), "x")


def test_only_floating_tensors_load_into_floating_weights(state, tmp_path):
    """An integer tensor of a weight's shape fits nothing: refused strictly, left out (and
    reported) with --allow-partial-weights; BatchNorm's integer step counter still loads."""
    path = tmp_path / "int.pth"
    torch.save(state | {FIRST: state[FIRST].to(torch.int64)}, path)
    with pytest.raises(UserError, match=rf"shape mismatches: {FIRST} \(16, 3, 3, 3\) int64 vs"):
        load_backbone_weights(str(path), build_backbone("resnet-small", 3), "resnet-small")
    own = build_backbone("resnet-small", 3)
    loaded, report = load_backbone_weights(str(path), own, "resnet-small", allow_partial=True)
    assert report.missing == [FIRST] and torch.equal(loaded[FIRST], own.state_dict()[FIRST])
    assert loaded["stem.1.num_batches_tracked"].dtype == torch.int64


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory) -> Path:
    """A real checkpoint of one epoch of a tiny `ce` training."""
    from auditor.training.engine import TrainConfig, train

    folder = tmp_path_factory.mktemp("run-checkpoint")
    train(
        *training_setup()["args"], TrainConfig(epochs=1, batch_size=8, checkpoint=f"{folder}/ce.pt")
    )
    return folder / "ce.pt"


def test_a_run_checkpoint_is_checked_as_weights_are(run_checkpoint, tmp_path):
    """The declared sizes before torch.load reads it, then every tensor: the damage names the
    file and says to delete it."""
    base = torch.load(run_checkpoint, weights_only=True)
    cases: list[tuple[Callable[[Path], None], str]] = [
        (lambda p: declare_size(p, 0xF0000000), "declares 4.03 GB of data in its"),
        (lambda p: declare_storage(p, 2**30), "cannot be read by torch.load (record size"),
        (lambda p: torch.save(base | {"current": stride0(torch.Size(), 10**12)}, p), "stride-0"),
        (lambda p: torch.save(base | {"current": base["current"].to_sparse()}, p), "sparse_coo"),
        (lambda p: torch.save(base | {"current": base["current"].to("meta")}, p), "meta tensor"),
    ]
    for damage, needle in cases:
        path = tmp_path / "ce.pt"
        path.write_bytes(run_checkpoint.read_bytes())
        damage(path)
        with pytest.raises(DamagedRunFolder) as err:
            load_checkpoint(path)
        assert f"checkpoint {path} " in str(err.value) and needle in str(err.value), str(err.value)
        assert "delete it" in str(err.value)


def test_run_folder_json_is_read_as_utf8_only(tmp_path):
    """UTF-16 (with or without its BOM), UTF-32 and a UTF-8 BOM: `json.loads` given bytes reads
    them all; the one reader of a run folder's JSON refuses each as damage."""
    text = '{"run_id": "r", "status": "complete", "dataset": "d", "class_names": ["a", "b"]}'
    path = tmp_path / "manifest.json"
    path.write_text(text, encoding="utf-8")
    assert read_json(path, MANIFEST)["class_names"] == ["a", "b"]
    for encoding, needle in [
        ("utf-16", "is not UTF-8 text"),
        ("utf-32", "is not UTF-8 text"),
        ("utf-16-le", "is not valid JSON"),
        ("utf-8-sig", "is not valid JSON"),
    ]:
        path.write_bytes(text.encode(encoding))
        with pytest.raises(DamagedRunFolder, match=f"damaged: {path} {needle}"):
            read_json(path, MANIFEST)


def test_the_cli_refuses_partial_weights_that_match_nothing(tmp_path):
    """`--allow-partial-weights` with a checkpoint of which nothing fits trained from scratch
    with exit 0; now exit 2, one sentence, no run folder."""
    _, env = csv_dataset(tmp_path)
    weights = tmp_path / "other.pth"
    torch.save({"encoder.layer.0.weight": torch.zeros(4, 4)}, weights)
    out = tmp_path / "out"
    result = run_cli(
        "run", "mine", *QUICK, "--weights", str(weights), "--allow-partial-weights",
        "--out", str(out), env=env,
    )  # fmt: skip
    refused(result, f"--weights {weights}: none of its tensors fits", out=out)
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("audit: error")]
    assert error.endswith("name its backbone with --backbone"), result.stderr
