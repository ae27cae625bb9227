"""Where the real CLI may write a file the user named (`auditor.write_guard`): never into a
dataset's root, never over a file of a run folder, never over an existing file without
`--force`, never to a folder, an empty path or /proc; every refusal exits 2 naming the flag and
the path, with nothing written: the dataset's root and the run folder are byte-identical after.
Also `audit compare` given one run twice, and `audit synth-faces`'s bad arguments."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from auditor.synth_faces_folder import write_rafdb_layout
from tests.conftest import run_cli
from tests.hostile import QUICK, Case, csv_dataset, digest, images, refused, run_batch
from tests.test_cli_e2e import last_line_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """One run of a 12-image csv dataset, and what the cases name: `root` (the dataset's root),
    `run`, `env` (the registry naming the dataset), `free` (an empty folder outside both)."""
    base = tmp_path_factory.mktemp("writes")
    root, env = csv_dataset(base)
    result = run_cli(
        "run", "mine", *QUICK, "--noise-rate", "0.3", "--out", str(base / "o"), env=env
    )
    free = base / "free"
    free.mkdir()
    np.save(free / "probs.npy", np.full((4, 2), 0.5))
    np.save(free / "labels.npy", np.array([0, 1, 0, 1]))
    return {"root": root, "run": last_line_dir(result), "env": env, "free": free}


def command(words: list[str], names: dict[str, Path]) -> list[str]:
    """`words` with each placeholder of `names` (ROOT, RUN, ...) replaced by its path, alone
    or as the head of a path (`RUN/samples.parquet`)."""
    out = []
    for word in words:
        head, _, tail = word.partition("/")
        out.append(str(names[head] / tail if tail else names[head]) if head in names else word)
    return out


def placeholders(tiny: dict) -> dict[str, Path]:
    return {"ROOT": tiny["root"], "RUN": tiny["run"], "FREE": tiny["free"]}


RELABELS = ["--relabels", "RUN/relabel.csv"]
SCORE = ["score", "--pred-probs", "FREE/probs.npy", "--labels", "FREE/labels.npy"]


@pytest.mark.parametrize(
    ("words", "needles"),
    [
        (
            ["export", "RUN", "--out", "ROOT/labels.csv"],
            ["--out", "labels.csv", "inside the dataset's root"],
        ),
        (
            ["export", "RUN", "--out", "ROOT/new.csv"],
            ["--out", "new.csv", "inside the dataset's root"],
        ),
        (
            ["export", "RUN", "--top", "3", "--out", "RUN/samples.parquet", "--force"],
            ["--out", "would overwrite samples.parquet, a file of the run folder", "--force never"],
        ),
        (
            ["apply", "RUN", *RELABELS, "--out", "RUN/manifest.json"],
            ["--out", "would overwrite manifest.json"],
        ),
        (
            ["apply", "RUN", *RELABELS, "--out", "ROOT/new.png"],
            ["--out", "new.png", "inside the dataset's root"],
        ),
        (
            ["apply", "RUN", *RELABELS, "--out", "ROOT/imgs/new.csv", "--force"],
            ["inside the dataset's root"],
        ),
        (
            ["compare", "RUN", "--out", "ROOT/labels"],
            ["--out", "labels.csv", "inside the dataset's root"],
        ),
        (
            ["compare", "RUN", "--out", "RUN/samples", "--force"],
            ["--out", "would overwrite samples.parquet"],
        ),
        (["export", "RUN", "--out", ""], ["--out ''", "names no path"]),
        (
            ["apply", "RUN", *RELABELS, "--out", "/proc/x"],
            ["--out /proc/x", "not a regular place to write"],
        ),
        (
            ["compare", "RUN", "--out", "/proc/x"],
            ["--out /proc/x.csv", "not a regular place to write"],
        ),
        (["export", "RUN", "--out", "FREE"], ["--out", "is a folder, not a file"]),
        (["apply", "RUN", *RELABELS, "--out", "FREE"], ["--out", "is a folder, not a file"]),
        (
            ["export", "RUN", "--out", "FREE/probs.npy/x.csv"],
            ["--out", "probs.npy is a file, not a folder"],
        ),
        ([*SCORE, "--out", "ROOT"], ["--out", "inside the dataset's root"]),
        ([*SCORE, "--out", "RUN/more"], ["--out", "would put a run inside the run folder"]),
        ([*SCORE, "--out", "FREE/probs.npy"], ["--out", "is a file, not a folder"]),
        (["run", "mine", "--out", "ROOT/reports"], ["--out", "inside the dataset's root"]),
        (["run", "mine", "--out", "RUN"], ["--out", "would put a run inside the run folder"]),
        (
            ["export", "RUN", "--out", "RUN/checkpoints/x.csv", "--force"],  # gone once complete
            ["--out", "checkpoints is a file the run folder", "writes and reads back"],
        ),
        (
            ["apply", "RUN", *RELABELS, "--out", "RUN/../review-ledger.csv", "--force"],
            ["--out", "is a review ledger"],
        ),
        (["synth-faces", "ROOT/imgs/faces"], ["synth-faces OUT", "inside the dataset's root"]),
        (["synth-faces", "RUN/faces"], ["synth-faces OUT", "inside the run folder"]),
    ],
)
def test_a_refused_output_changes_nothing(tiny, words, needles):
    before = digest(tiny["root"]), digest(tiny["run"]), digest(tiny["free"])
    refused(run_cli(*command(words, placeholders(tiny)), env=tiny["env"]), *needles)
    assert (digest(tiny["root"]), digest(tiny["run"]), digest(tiny["free"])) == before


@pytest.mark.parametrize(
    ("words", "existing"),
    [
        (["export", "RUN", "--out", "OUT/suspects.csv"], "suspects.csv"),
        (["apply", "RUN", *RELABELS, "--out", "OUT/corrected.csv"], "corrected.csv"),
        (["compare", "RUN", "--out", "OUT"], "compare.csv"),  # a folder: OUT/compare.csv, ...
    ],
)
def test_an_existing_file_is_overwritten_only_with_force(tiny, tmp_path, words, existing):
    (tmp_path / existing).write_text("keep me\n")
    argv = command(words, placeholders(tiny) | {"OUT": tmp_path})
    refused(run_cli(*argv, env=tiny["env"]), "--out", existing, "already exists", "pass --force")
    assert (tmp_path / existing).read_text() == "keep me\n"
    result = run_cli(*argv, "--force", env=tiny["env"])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / existing).read_text() != "keep me\n"


def test_export_rewrites_its_own_default_file(tiny, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny["run"], run)
    (run / "suspects.csv").write_text("an earlier export\n")
    result = run_cli("export", str(run), env=tiny["env"])
    assert result.returncode == 0, result.stderr
    assert (run / "suspects.csv").read_text().startswith("sample_id")


@pytest.mark.parametrize("spelling", ["symlink", "dots"])
def test_compare_refuses_one_run_twice(tiny, tmp_path, spelling):
    run = tiny["run"]
    if spelling == "symlink":
        other = tmp_path / "link"
        other.symlink_to(run)
    else:
        other = Path(f"{run.parent}/../{run.parent.name}/{run.name}/")
    result = run_cli("compare", str(run), str(other), "--out", str(tmp_path / "cmp"))
    refused(result, f"run {run.name} is given twice")
    assert not any(tmp_path.glob("cmp*"))


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--train", "-5"], ["--train", "must be at least 1"]),
        (["--test", "-1"], ["--test", "must be at least 0"]),
        (["--noise-files", "abc"], ["--noise-files", "'abc' is not a noise rate", "[0, 1)"]),
        (["--noise-files", "0.1,1.5"], ["--noise-files", "'1.5' is not a noise rate"]),
        (["--noise-files=-0.1"], ["--noise-files", "'-0.1' is not a noise rate"]),
        (["--noise-files", "0.1,0.12"], ["--noise-files", "two rates would write noise01.txt"]),
    ],
)
def test_synth_faces_refuses_bad_arguments(tmp_path, args, needles):
    out = tmp_path / "faces"
    refused(run_cli("synth-faces", str(out), "--train", "2", "--test", "1", *args), *needles)
    assert not out.exists()


def test_synth_faces_writes_only_a_new_empty_or_its_own_folder(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    refused(run_cli("synth-faces", str(a_file)), "synth-faces OUT", "is a file")
    data = tmp_path / "data"
    images(data, 2)
    before = digest(data)
    refused(run_cli("synth-faces", str(data)), "synth-faces OUT", "is not a synth-faces output")
    assert digest(data) == before
    faces = tmp_path / "faces"
    for _ in range(2):  # its own output may be written again
        result = run_cli("synth-faces", str(faces), "--train", "2", "--test", "0")
        assert result.returncode == 0, result.stderr
    assert (faces / "EmoLabel" / "list_patition_label.txt").read_text().count("\n") == 2


def dataset_layouts(base: Path) -> dict[str, Path]:
    """Folders registered nowhere that are datasets' roots by what they hold, each one kind of
    `auditor.dataset_layouts`: {placeholder: root}."""
    faces = write_rafdb_layout(base / "faces", n_train=2, n_test=1)
    rafdb = base / "rafdb"
    (rafdb / "EmoLabel").mkdir(parents=True)
    (rafdb / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 1\n")
    ferplus = base / "ferplus"
    ferplus.mkdir()
    (ferplus / "fer2013new.csv").write_text("Usage,Image name\n")
    affectnet = base / "affectnet"
    (affectnet / "Manually_Annotated_file_lists").mkdir(parents=True)
    (affectnet / "Manually_Annotated_file_lists" / "training.csv").write_text("x\n")
    table = base / "table"
    images(table, 2)
    (table / "labels.csv").write_text("path,label\nimgs/0.png,a\nimgs/1.png,b\n")
    classes = base / "classes"
    for name in ("cat", "dog"):
        images(classes, 2)
        (classes / "imgs").rename(classes / name)  # the images right in their class folder
    return {
        "FACES": faces,
        "RAFDB": rafdb,
        "FERPLUS": ferplus,
        "AFFECTNET": affectnet,
        "TABLE": table,
        "CLASSES": classes,
    }


LAYOUTS = [
    ("FACES", "an `audit synth-faces` output"),
    ("RAFDB", "a RAF-DB label list"),
    ("FERPLUS", "FERPlus's fer2013new.csv"),
    ("AFFECTNET", "an AffectNet layout"),
    ("TABLE", "a csv dataset's labels.csv"),
    ("CLASSES", "class folders of images"),
]


def test_no_writer_lands_in_a_dataset_root_known_by_what_it_holds(tiny, tmp_path):
    """synth-faces into a new sub-folder, score's run folders, a file output: inside any folder
    that holds a dataset's layout, registered or not (an image folder: beside its classes or
    inside one), refused naming what the folder holds; nothing written anywhere."""
    names = placeholders(tiny) | dataset_layouts(tmp_path)
    before = {key: digest(path) for key, path in names.items()}
    words = []
    for key, _ in LAYOUTS:
        words += [
            ["synth-faces", f"{key}/more", "--train", "2", "--test", "1"],
            [*SCORE, "--out", f"{key}/scores"],
            ["export", "RUN", "--out", f"{key}/suspects.csv"],
        ]
    words += [
        ["synth-faces", "CLASSES/cat/faces", "--train", "2", "--test", "1"],  # inside a class
        [*SCORE, "--out", "CLASSES"],
        ["synth-faces", "ROOT/more", "--train", "2", "--test", "1"],  # the registry's root
    ]
    results = run_batch([Case(command(w, names)) for w in words], env=tiny["env"])
    whats = [what for _, what in LAYOUTS for _ in range(3)] + [LAYOUTS[-1][1]] * 2 + [""]
    for argv, result, what in zip(words, results, whats, strict=True):
        refused(result, "inside the dataset's root", what)
        assert len(result.stderr.strip().splitlines()) == 1, (argv, result.stderr)
    assert {key: digest(path) for key, path in names.items()} == before


def test_apply_refuses_a_ledger_inside_a_dataset_root_or_through_a_symlink(tiny, tmp_path):
    """The review ledger lives beside a dataset's run folders: a run folder moved into a
    dataset's root would put the ledger and its lock there, and a symbolic link in place of
    the ledger or of its lock would be written through; each is refused before anything is
    written (no corrected file, no ledger, no lock, the linked file unchanged)."""
    other = tmp_path / "other"
    images(other / "cat", 2)
    images(other / "dog", 2)
    moved = other / "runs" / "mine" / tiny["run"].name
    shutil.copytree(tiny["run"], moved)
    registry = tmp_path / "datasets.yaml"
    registry.write_text(
        Path(tiny["env"]["AUDIT_DATASETS"]).read_text() + f"other:\n  kind: imagefolder\n"
        f"  root: {other}\n"
    )
    linked = tmp_path / "runs" / "mine"
    shutil.copytree(tiny["run"], linked / tiny["run"].name)
    secret = tmp_path / "secret.txt"
    secret.write_text("not the tool's\n")
    (linked / "review-ledger.csv").symlink_to(secret)
    locked = tmp_path / "locked" / "mine"
    shutil.copytree(tiny["run"], locked / tiny["run"].name)
    (locked / ".review-ledger.csv.lock").symlink_to(secret)
    runs = [moved, linked / tiny["run"].name, locked / tiny["run"].name]
    before = digest(tmp_path)
    cases = [
        Case(["apply", str(run), "--relabels", str(run / "relabel.csv"), "--out", str(out)])
        for run, out in zip(runs, [tmp_path / f"fixed{i}.csv" for i in range(3)], strict=True)
    ]
    moved_result, link_result, lock_result = run_batch(cases, env={"AUDIT_DATASETS": str(registry)})
    refused(
        moved_result, "the review ledger", "is inside the dataset's root", "move the run folder"
    )
    refused(link_result, "the review ledger", "is a symbolic link, which audit never makes")
    refused(lock_result, "the lock file", "is a symbolic link, which audit never makes")
    assert digest(tmp_path) == before
