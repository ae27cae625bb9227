"""The same seed on the CPU gives an identical samples.parquet, for every method."""

import pyarrow.parquet as pq

from auditor.config import resolve
from auditor.datasets.registry import DatasetEntry
from auditor.run import execute

ENTRY = DatasetEntry(
    name="tiny-faces",
    kind="synth-faces",
    root=None,
    env=None,
    classes=None,
    defaults={},
    options={"train": 56, "test": 14, "size": 20},
    mirror_symmetric=True,
)


def run_once(out, seed):
    cli = {
        "method": ["ce,eac,scn,rul,gsmc"],
        "noise_rate": 0.3,
        "epochs": 2,
        "image_size": 16,
        "batch_size": 16,
        "device": "cpu",
        "report": False,
        "out": str(out),
        "seed": seed,
        "scn_relabel_epoch": 1,
    }
    run_dir, _ = execute(resolve(ENTRY.name, cli, {}), ENTRY, ["audit"])
    return pq.read_table(run_dir / "samples.parquet")


def test_same_seed_same_samples(tmp_path):
    first, second = run_once(tmp_path / "a", 3), run_once(tmp_path / "b", 3)
    assert first.equals(second)
    assert not first.equals(run_once(tmp_path / "c", 4))
