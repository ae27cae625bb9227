"""Messy image folders through the real CLI: undecodable files are skipped and listed, odd
modes are converted, and --strict turns any failure into exit 2."""

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.fer_fixtures import save_face
from tests.test_cli_e2e import last_line_dir

pytestmark = pytest.mark.slow


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path: Path, side: int = 20000) -> None:
    """A valid 1-bit PNG of side x side pixels (400 megapixels, over PIL's bomb limit)."""
    raw = zlib.compress(b"\x00" * ((side // 8 + 1) * side), 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", raw)
        + png_chunk(b"IEND", b"")
    )


def messy_folder(root: Path) -> dict[str, str]:
    """Good faces in two classes plus one file of each bad kind in class `a`; returns
    {file name: expected outcome}."""
    for i in range(16):
        save_face(root / ("a" if i % 2 else "b") / f"good{i}.png", i % 2 * 3, seed=i, size=32)
    a = root / "a"
    good = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(good, format="JPEG")
    (a / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (a / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    (a / "empty.jpg").write_bytes(b"")
    (a / "gone.png").symlink_to(a / "deleted.png")  # a broken link: listed by its target, missing
    huge_png(a / "huge.png")
    Image.fromarray(np.full((32, 32), 90, np.uint8)).save(a / "gray.png")
    Image.fromarray(np.full((32, 32, 4), 90, np.uint8), "RGBA").save(a / "rgba.png")
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).convert("P").save(a / "palette.png")
    Image.fromarray((np.arange(32 * 32).reshape(32, 32) * 60).astype(np.uint16)).save(
        a / "sixteen.png"
    )
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(a / "really_png.jpg", format="PNG")
    skipped = {"truncated.jpg", "corrupt.png", "empty.jpg", "huge.png", "deleted.png"}
    converted = {"gray.png", "rgba.png", "palette.png", "sixteen.png", "really_png.jpg"}
    return {n: "skipped" for n in skipped} | {n: "kept" for n in converted}


def test_bad_images_are_skipped_and_listed(tmp_path):
    expected = messy_folder(tmp_path / "data")
    result = run_cli(
        "run",
        "imagefolder",
        "--root",
        str(tmp_path / "data"),
        "--method",
        "ce",
        "--epochs",
        "1",
        "--image-size",
        "16",
        "--out",
        str(tmp_path / "out"),
    )
    run_dir = last_line_dir(result)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    skipped = {Path(s["filepath"]).name: s["reason"] for s in manifest["skipped"]}
    assert set(skipped) == {n for n, outcome in expected.items() if outcome == "skipped"}
    assert skipped["empty.jpg"] == "empty file" and skipped["huge.png"].startswith("too large")
    assert skipped["deleted.png"] == "missing file"
    assert manifest["n_train"] == 16 + 5 and manifest["status"] == "complete"
    assert "skipped 5 undecodable images" in result.stderr


def test_strict_makes_a_bad_image_an_error(tmp_path):
    messy_folder(tmp_path / "data")
    result = run_cli(
        "run",
        "imagefolder",
        "--root",
        str(tmp_path / "data"),
        "--strict",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2 and "5 images cannot be decoded (--strict)" in result.stderr
    assert not (tmp_path / "out").exists()
