"""bench/scale.py's pure helpers (and those of its stages and table, bench/scale_stages.py and
bench/scale_table.py) and its process-tree memory measurement (bench/process_memory.py) (fast)."""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name: str, module_name: str):
    """bench/<name>.py as a module (bench/ on the path for its sibling imports)."""
    spec = importlib.util.spec_from_file_location(module_name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def loaded(name: str):
    """bench/<name>.py as the module `<name>_bench`, removed again after the tests."""
    try:
        yield load(name, f"{name}_bench")
    finally:
        sys.modules.pop(f"{name}_bench", None)


@pytest.fixture(scope="module")
def bench_path():
    sys.path.insert(0, str(BENCH))  # scale.py's imports of its siblings
    try:
        yield
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def scale(bench_path):
    yield from loaded("scale")


@pytest.fixture(scope="module")
def stages(bench_path):
    yield from loaded("scale_stages")


@pytest.fixture(scope="module")
def table(bench_path):
    yield from loaded("scale_table")


@pytest.fixture(scope="module")
def memory():
    yield from loaded("process_memory")


def test_stat_with_spaces_and_parentheses_in_the_name(memory):
    assert memory.parse_stat("42 (a (b) c) S 7 42 99 0 -1") == (7, 99)


def test_status_fields_in_bytes(memory):
    text = "Name:\tx\nVmRSS:\t  2048 kB\nRssAnon:\t 1024 kB\n"
    assert memory.parse_kb(text, ("VmRSS", "RssAnon", "Pss")) == {
        "VmRSS": 2048 * 1024,
        "RssAnon": 1024 * 1024,
        "Pss": 0,
    }


def test_tree_holds_descendants_and_the_session(memory):
    procs = {10: (1, 10), 11: (10, 10), 12: (11, 12), 13: (1, 10), 14: (13, 14), 20: (1, 20)}
    # 12 left the session (setsid) but descends from 10; 13 was re-parented to init
    assert memory.tree(10, procs) == {10, 11, 12, 13, 14}


def test_codes_balanced_and_prefixes_balanced(stages):
    codes = stages.affectnet_codes(7000, stages.test_count(7000))
    train = np.array(codes["train"])
    assert np.bincount(train).tolist() == [1000] * 7
    assert np.bincount(train[:700], minlength=7).min() > 60
    assert len(codes["test"]) == 87 and stages.test_count(300_000) == 3500


def test_sizes_and_disk_refusal(scale, tmp_path):
    assert scale.cache_bytes(300_000, 224) == 45_158_400_000
    assert scale.jpeg_bytes(224) == 8192 and scale.jpeg_bytes(32) == 4096
    with pytest.raises(SystemExit, match="not enough disk for the cache"):
        scale.check_disk(tmp_path, 10**18, "the cache")
    scale.check_disk(tmp_path, 1, "a byte")


def test_table_marks_each_target(table):
    rows = [
        table.rss_check(table.Row("a", 1000, 224, 2.0, 500.0, 7e9)),
        table.rss_check(table.Row("b", 500, 224, 1.0, 250.0, 1e9)),
        table.Row("c", 10, None, failed="log"),
    ]
    table.ratio_check(rows[0], rows[1], 1.7, "b")
    lines = table.markdown(rows).splitlines()
    assert lines[2] == "| a | 1,000 | 224 | 2.0 | 500 | 7.00 | RSS < 6 GB; >= 1.7x b (2.00x) | no |"
    assert lines[3].endswith("| RSS < 6 GB | yes |") and lines[4].endswith("| failed |")


def test_measure_sums_the_tree(memory, tmp_path):
    """Two grandchildren holding 200 MB each at once: the tree's sum of anonymous memory sees
    both. (ru_maxrss is not checked here: a child forked from this large pytest process starts
    with its parent's peak, which the bench's own small process does not have.)"""
    hold = "b = bytearray(200_000_000); import time; time.sleep(1.5)"
    code = (
        f"import subprocess, sys; ps = [subprocess.Popen([sys.executable, '-c', {hold!r}]) "
        "for _ in range(2)]; [p.wait() for p in ps]; print('RESULT {\"images\": 1}')"
    )
    m = memory.measure([sys.executable, "-c", code], dict(os.environ), tmp_path / "t.log", tmp_path)
    assert m.ok and memory.result_of(m) == {"images": 1}
    assert m.anon > 400e6 and m.rss >= m.anon
    failed = memory.measure(
        [sys.executable, "-c", "raise SystemExit(3)"],
        dict(os.environ),
        tmp_path / "f.log",
        tmp_path,
    )
    assert not failed.ok and failed.wall_s < 30
