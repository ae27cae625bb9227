"""AffectNet scale, measured (a script, not a test): every stage of the tool on a generated
AffectNet-layout dataset (the official layout: Manually_Annotated_file_lists/*.csv with face
boxes, Manually_Annotated_Images/) of synthetic faces written as JPEG files. Each stage runs in
its own process; its wall time and peak resident memory are measured from outside.

Stages (`--stages`, default all, in this order):
  generate  N training + min(3,500, max(70, N/80)) test faces at --size px as JPEGs (drawn at
            half the size and resized up, 3.5x cheaper than drawing at full size) with
            --workers processes (tests/fer_fixtures.py's AffectNet writer, its faces split into
            chunks; codes 0..6 balanced, shuffled, face boxes the middle 80%); skipped when
            the folder for this N and size is complete (it is kept: reruns are cheap), and the
            earlier measurement is shown. images/s: faces written / seconds of the writing.
  build     the image cache at --cache-size px of the first --n-224 training images,
            `build_cache(table, size, workers)` from an empty cache folder, with --workers
            processes and again with one process on the first --single-n images (that cache is
            deleted after). images/s: images / seconds inside `build_cache`.
  read      one pass over the first K rows (each K of --read-sizes, each its own process) of
            that cache opened as a map (`load_pixels(..., mode="disk")`), in random batches of
            256 read as training reads them (`auditor.training.feed.batches`, the next batch
            read ahead). images/s: K / seconds of the pass. The 224 px cache is deleted after
            this stage unless --keep-cache.
  train     one epoch (`auditor.training.engine.train`, final pass off) of --method with
            --backbone at --train-size px on the first --train-n training images, the images
            in memory (`mode="memory"`) and from the map (`mode="disk"`), --train-repeats
            times each in the order memory, map, map, memory, ... (the mean is shown); the
            cache is built beforehand in a process of its own, so both are timed alike.
            images/s: images / seconds inside `train`, ImageNet normalisation for both.
  run       `audit run affectnet --root DATA --method ce --epochs 1 --image-size --run-size
            --workers W` on all N (from an empty cache folder: decoding is included; the report
            included, its UMAP map on at most MAP_POINTS samples)
  review    `audit review RUN --no-launch` (the FiftyOne import; its own database folder)
  export    `audit export RUN` (the flagged suspects)
  apply     `audit apply RUN --relabels` the exported suspects, each relabelled to the tool's
            suggestion (written by this script, untimed)
  score     `audit score` on N x 7 synthetic out-of-sample probabilities
For the CLI stages images/s is N / the process's wall time.

Memory: the stage's process tree (the process, its descendants, everything in its session:
decoding workers, torchrun ranks, FiftyOne's MongoDB), polled every 0.2 s from /proc by
bench/process_memory.py: "peak RSS" is the largest sum of VmRSS at one poll (shared pages counted
once per process: an upper bound) or the largest single process's ru_maxrss, whichever is
larger; the notes add the peak sums of PSS and RssAnon. GB = 10^9 bytes.

Disk: a uint8 224 px cache takes 3 x 224 x 224 = 150,528 bytes per image (300,000 images:
45 GB), hence --n-224 apart from --n. Free space is checked before anything is written and
before each cache build; a build that would not fit is refused.

This file holds the driver (`Bench`: the work folders, each stage's process and its row) and
the options; the stages are functions of the driver in bench/scale_pipeline.py (generate, build,
read, train) and bench/scale_commands.py (the `audit` commands).

    .venv/bin/python bench/scale.py --quick
    .venv/bin/python bench/scale.py [--n 300000] [--n-224 100000] [--read-sizes 25000,50000,100000]
                                    [--stages build,read] [--readme]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from process_memory import Measured, measure, result_of  # bench/, beside this script
from readme_block import write_block
from scale_commands import audit_apply, audit_export, audit_review, audit_run, audit_score
from scale_disk import cache_bytes, check_disk, jpeg_bytes
from scale_pipeline import DONE, build, generate, read, train
from scale_stages import test_count
from scale_table import GB, Row, markdown, rss_check

REPO = Path(__file__).resolve().parents[1]

AUDIT = Path(sys.executable).parent / "audit"
STAGES_SCRIPT = Path(__file__).resolve().parent / "scale_stages.py"  # a stage's own process
MARKERS = ("<!-- scale-benchmark -->", "<!-- /scale-benchmark -->")
STAGES = ("generate", "build", "read", "train", "run", "review", "export", "apply", "score")


# ---- the driver ----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.work).resolve()
        self.data = self.work / "data" / f"affectnet-{args.n_all}-{args.size}px"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.logs = self.work / "logs" / stamp
        self.fiftyone = self.work / "fiftyone-db" / stamp  # a fresh database per invocation
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.load_start = os.getloadavg()[0]
        self.cache_built = False

    def env(self, cache: str) -> dict[str, str]:
        return os.environ | {
            "AUDIT_CACHE_DIR": str(self.work / "cache" / cache),
            "FIFTYONE_DATABASE_DIR": str(self.fiftyone),
            "FIFTYONE_DO_NOT_TRACK": "true",
            "FIFTYONE_DATABASE_VALIDATION": "false",
            "MPLBACKEND": "Agg",
            "PYTHONUNBUFFERED": "1",
        }

    def python(self, name: str, log: str, cache: str, **kwargs) -> Measured:
        cmd = [sys.executable, str(STAGES_SCRIPT), name, json.dumps(kwargs)]
        return self.note(measure(cmd, self.env(cache), self.logs / f"{log}.log", REPO), log)

    def cli(self, log: str, *args: str, cache: str = "run") -> Measured:
        return self.note(
            measure([str(AUDIT), *args], self.env(cache), self.logs / f"{log}.log", REPO), log
        )

    def note(self, m: Measured, name: str) -> Measured:
        state = "ok" if m.ok else f"FAILED, see {m.log}"
        self.notes.append(
            f"{name}: peak PSS {m.pss / GB:.2f} GB, peak anonymous RSS "
            f"{m.anon / GB:.2f} GB, largest process {m.maxrss / GB:.2f} GB; "
            f"load average {m.load:.1f} at its start"
        )
        print(f"  {name}: {m.wall_s:.1f} s, peak RSS {m.rss / GB:.2f} GB ({state})", flush=True)
        if not m.ok:
            print(m.log.read_text()[-3000:], file=sys.stderr)
        return m

    def row(
        self, stage: str, n: int | None, size: int | None, m: Measured, per_s: float | None = None
    ) -> Row:
        """A measured row; `per_s` None: N / the wall time (the CLI stages)."""
        if per_s is None and m.ok and n:
            per_s = n / m.wall_s
        row = Row(stage, n, size, m.wall_s, per_s, m.rss, failed="" if m.ok else str(m.log))
        self.rows.append(rss_check(row))
        return row

    @staticmethod
    def rate(m: Measured) -> float | None:
        r = result_of(m)
        return r["images"] / r["seconds"] if m.ok and r.get("seconds") else None

    # -- disk ------------------------------------------------------------------------------

    def preflight(self) -> None:
        """Refuse before writing anything when this invocation's peak disk use would not fit:
        the images (unless generated before), then the larger of the cache stages' caches (the
        one-process cache and the 224 px cache are deleted after use, unless --keep-cache) and
        the later stages' (the training subset's cache, the run's cache and outputs)."""
        a, stages = self.args, set(self.args.stages)
        images = (a.n_all + test_count(a.n_all)) * jpeg_bytes(a.size)
        first = cache_bytes(a.n_224 + a.single_n, a.cache_size) if {"build", "read"} & stages else 0
        later = cache_bytes(a.train_n, a.train_size) if "train" in stages else 0
        if {"run", "review", "export", "apply"} & stages:
            later += cache_bytes(a.n + test_count(a.n_all), a.run_size) + a.n * 4000
        caches = first + later if a.keep_cache else max(first, later)
        generated = (self.data / DONE).exists()
        check_disk(
            self.work,
            caches + (0 if generated else images),
            f"this benchmark's {'caches' if generated else 'images and caches'}",
        )

    def all(self) -> str:
        stages = self.args.stages
        self.preflight()
        generate(self)  # every other stage reads the generated folder
        if "build" in stages or "read" in stages:
            build(self)
        if "read" in stages:
            read(self)
        if "train" in stages:
            train(self)
        run_dir = audit_run(self) if {"run", "review", "export", "apply"} & set(stages) else None
        if run_dir is not None:
            if "review" in stages:
                audit_review(self, run_dir)
            suspects = audit_export(self, run_dir) if {"export", "apply"} & set(stages) else None
            if suspects is not None and "apply" in stages:
                audit_apply(self, run_dir, suspects)
        if "score" in stages:
            audit_score(self)
        return self.text()

    def text(self) -> str:
        import torch

        a = self.args
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
        head = (
            f"N = {a.n:,} faces for the run stages ({a.run_size} px), {a.n_224:,} for the "
            f"{a.cache_size} px cache stages (one process: {a.single_n:,}); JPEGs of "
            f"{a.size} px; {os.cpu_count()} cores, {ram:.0f} GB RAM, torch {torch.__version__}"
            f" on the CPU; load average {self.load_start:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end; {time.strftime('%Y-%m-%d')}."
        )
        notes = [
            "wall s: the stage's process from start to exit (imports and loading the table "
            "included); images/s: generate, build, read, train: images / seconds of the stage's "
            "own work inside it; the `audit` commands: N / wall s.",
            "peak RSS: the largest sum of VmRSS over the stage's process tree (workers, "
            "torchrun ranks, MongoDB included) in polls every 0.2 s, or the largest single "
            "process's ru_maxrss if larger; an upper bound (pages shared by processes counted "
            "in each). Per stage below: peak PSS (shared pages divided), peak anonymous RSS.",
            *self.notes,
        ]
        return "\n".join([head, "", markdown(self.rows), "", *(f"- {n}" for n in notes)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: N = 2,000 and small subsets"
    )
    parser.add_argument("--n", type=int, help="training faces of the run stages (default 300,000)")
    parser.add_argument(
        "--n-224", type=int, help="images of the --cache-size cache stages (default 100,000)"
    )
    parser.add_argument(
        "--single-n", type=int, help="images of the one-process build (default 15,000)"
    )
    parser.add_argument(
        "--read-sizes",
        help="rows read, comma-separated (default 25000,50000,100000; at most --n-224)",
    )
    parser.add_argument(
        "--train-n", type=int, help="images of the training epochs (default 20,000)"
    )
    parser.add_argument(
        "--train-size", type=int, help="image size of the training epochs (default 48)"
    )
    parser.add_argument(
        "--train-repeats", type=int, default=2, help="epochs of each kind (default 2)"
    )
    parser.add_argument(
        "--size", type=int, default=224, help="side of the generated JPEGs (default 224)"
    )
    parser.add_argument(
        "--cache-size",
        type=int,
        default=224,
        help="image size of the build and read stages (default 224)",
    )
    parser.add_argument(
        "--run-size", type=int, default=32, help="--image-size of `audit run` (default 32)"
    )
    parser.add_argument("--backbone", default="resnet-small")
    parser.add_argument("--method", default="ce", help="method of the training epochs (default ce)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes of the generator, the cache build and `audit run --workers` "
        "(default: the cores)",
    )
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated, of {','.join(STAGES)} (default all; generate is always done "
        "when needed)",
    )
    parser.add_argument(
        "--work",
        default=str(REPO / "reports" / "scale"),
        help="images, caches, runs, FiftyOne database, logs (default reports/scale)",
    )
    parser.add_argument(
        "--keep-cache", action="store_true", help="keep the --cache-size cache after the read stage"
    )
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    parser.add_argument("run_args", nargs="*", help="extra `audit run` options, after --")
    a = parser.parse_args(argv)
    quick = a.quick
    a.n = a.n or (2000 if quick else 300_000)
    a.n_224 = a.n_224 or (2000 if quick else 100_000)
    a.single_n = min(a.single_n or (1000 if quick else 15_000), a.n_224)
    a.read_sizes = sorted(
        {
            min(int(k), a.n_224)
            for k in (a.read_sizes or ("500,1000,2000" if quick else "25000,50000,100000")).split(
                ","
            )
        }
    )
    a.train_n = a.train_n or (1000 if quick else 20_000)
    a.train_size = a.train_size or (32 if quick else 48)
    a.stages = [s for s in a.stages.split(",") if s]
    unknown = set(a.stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}; they are {', '.join(STAGES)}")
    a.n_all = max(a.n, a.n_224, a.train_n)  # one generated folder serves every stage
    if a.n_all != a.n and {"run", "review", "export", "apply"} & set(a.stages):
        parser.error(
            f"--n ({a.n:,}) must be at least --n-224 and --train-n: the run stages use the whole "
            "folder"
        )
    return a


def main() -> None:
    args = parse_args()
    bench = Bench(args)
    print(f"work folder {bench.work}; logs in {bench.logs}", flush=True)
    t = time.perf_counter()
    text = bench.all()
    print(f"\nall stages in {time.perf_counter() - t:.0f} s\n\n{text}")
    if args.readme:
        write_block(MARKERS, text)


if __name__ == "__main__":
    main()
