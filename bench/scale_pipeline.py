"""bench/scale.py's data-pipeline stages, each a function of the driver (`scale.Bench`): `generate`
the AffectNet-layout JPEG folder, `build` the image cache with every worker and with one process,
`read` it back as a map, and `train` one epoch from memory and from the map (the stages are
described in bench/scale.py's docstring)."""

from __future__ import annotations

import json
import shutil
import time
from typing import TYPE_CHECKING

from process_memory import Measured, result_of  # bench/, beside this script
from scale_disk import cache_bytes, check_disk
from scale_stages import test_count
from scale_table import Row, fmt, ratio_check, rss_check

if TYPE_CHECKING:
    from scale import Bench

BUILD_TARGET = 1.7  # all workers vs one process, images/s
MAP_TARGET = 0.9  # training from the map vs in memory, images/s
DONE = "bench-generated.json"  # written last into a complete generated folder


def generate(bench: Bench) -> None:
    a = bench.args
    done = bench.data / DONE
    if done.exists():
        earlier = json.loads(done.read_text())
        print(f"generate: {bench.data} is complete (measured {earlier['when']})", flush=True)
        row = Row(
            f"generate (earlier, {earlier['when']})",
            earlier["n"],
            a.size,
            earlier["wall_s"],
            earlier["per_s"],
            earlier["rss"],
        )
        bench.rows.append(rss_check(row))
        return
    print(
        f"generate: {a.n_all:,} + {test_count(a.n_all):,} faces at {a.size} px into {bench.data}",
        flush=True,
    )
    m = bench.python(
        "generate",
        "generate",
        "none",
        root=str(bench.data),
        n=a.n_all,
        size=a.size,
        workers=a.workers,
    )
    r = result_of(m)
    row = bench.row(f"generate ({a.workers} processes)", r.get("total"), a.size, m, bench.rate(m))
    if not m.ok:
        raise SystemExit(f"generating the dataset failed: see {m.log}")
    if r["images"] == r["total"]:  # a resumed generation is not a measurement to keep
        done.write_text(
            json.dumps(
                {
                    "n": r["total"],
                    "wall_s": row.wall_s,
                    "per_s": row.per_s,
                    "rss": row.rss,
                    "when": time.strftime("%Y-%m-%d"),
                }
            )
        )
    else:
        done.write_text(
            json.dumps(
                {"n": r["total"], "wall_s": None, "per_s": None, "rss": None, "when": "resumed"}
            )
        )


def build(bench: Bench) -> None:
    a = bench.args
    shutil.rmtree(bench.work / "cache" / "224", ignore_errors=True)
    check_disk(
        bench.work,
        cache_bytes(a.n_224, a.cache_size),
        f"the {a.cache_size} px cache of {a.n_224:,} images",
    )
    print(f"build: {a.n_224:,} images at {a.cache_size} px, {a.workers} workers", flush=True)
    warm_files(bench, a.n_224)
    m = bench.python(
        "build",
        "build-all",
        "224",
        root=str(bench.data),
        n=a.n_224,
        size=a.cache_size,
        workers=a.workers,
    )
    every = bench.row(f"cache build ({a.workers} workers)", a.n_224, a.cache_size, m, bench.rate(m))
    one_dir = bench.work / "cache" / "224-one"
    shutil.rmtree(one_dir, ignore_errors=True)
    check_disk(
        bench.work,
        cache_bytes(a.single_n, a.cache_size),
        f"the one-process cache of {a.single_n:,} images",
    )
    print(f"build: {a.single_n:,} images at {a.cache_size} px, 1 worker", flush=True)
    m = bench.python(
        "build",
        "build-one",
        "224-one",
        root=str(bench.data),
        n=a.single_n,
        size=a.cache_size,
        workers=1,
    )
    one = bench.row("cache build (1 process)", a.single_n, a.cache_size, m, bench.rate(m))
    shutil.rmtree(one_dir, ignore_errors=True)
    ratio_check(every, one, BUILD_TARGET, "1 process")
    bench.cache_built = every.failed == ""


def warm_files(bench: Bench, n: int) -> None:
    """Read the JPEG files of the first `n` training images once (untimed), so that both
    builds find them in the page cache, as they are right after generating."""
    lists = bench.data / "Manually_Annotated_file_lists" / "training.csv"
    with open(lists) as f:
        next(f)
        for _, line in zip(range(n), f, strict=False):
            path = bench.data / "Manually_Annotated_Images" / line.split(",", 1)[0]
            with open(path, "rb") as image:
                image.read()


def read(bench: Bench) -> None:
    a = bench.args
    if not bench.cache_built:
        print("read: skipped, the cache was not built in this invocation", flush=True)
        return
    for k in a.read_sizes:
        print(f"read: {k:,} of {a.n_224:,} rows, batches of 256", flush=True)
        m = bench.python(
            "read",
            f"read-{k}",
            "224",
            root=str(bench.data),
            n=a.n_224,
            rows=k,
            size=a.cache_size,
            batch=256,
        )
        bench.row(
            f"read the {a.n_224:,}-row map, batches of 256", k, a.cache_size, m, bench.rate(m)
        )
    if not a.keep_cache:
        shutil.rmtree(bench.work / "cache" / "224", ignore_errors=True)


def train(bench: Bench) -> None:
    a = bench.args
    spec = dict(
        root=str(bench.data),
        n=a.train_n,
        size=a.train_size,
        backbone=a.backbone,
        method=a.method,
        batch=256,
        workers=a.workers,
    )
    print(
        f"train: {a.train_n:,} images at {a.train_size} px, {a.backbone}, {a.method}",
        flush=True,
    )
    bench.python("train", "train-prepare", "train", mode="disk", prepare=True, **spec)
    order = (["memory", "disk", "disk", "memory"] * a.train_repeats)[: 2 * a.train_repeats]
    runs: dict[str, list[Measured]] = {"memory": [], "disk": []}
    for k, mode in enumerate(order):
        runs[mode].append(bench.python("train", f"train-{mode}-{k}", "train", mode=mode, **spec))
    rows = {}
    for mode, label in (("memory", "in memory"), ("disk", "from the map")):
        ms = runs[mode]
        rates = [bench.rate(m) for m in ms]
        ok = all(m.ok for m in ms) and all(rates)
        row = Row(
            f"train 1 epoch, {label}",
            a.train_n,
            a.train_size,
            sum(m.wall_s for m in ms) / len(ms),
            sum(rates) / len(rates) if ok else None,
            max(m.rss for m in ms),
            failed="" if ok else "failed",
        )
        bench.rows.append(rss_check(row))
        rows[mode] = row
        kinds = {result_of(m).get("pixels") for m in ms}
        bench.notes.append(
            f"train {label}: pixels given to train() as {', '.join(map(str, kinds))}; "
            f"images/s per repeat {', '.join(fmt(r, ',.0f') for r in rates)}"
        )
    ratio_check(rows["disk"], rows["memory"], MAP_TARGET, "in memory")
