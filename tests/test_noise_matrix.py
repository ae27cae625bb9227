"""Human FER noise (`--noise-type human-fer`) and matrix noise (`--noise-type matrix
--noise-matrix FILE`): the estimate of the human confusion, the mapping by expression name, the
scaling to --noise-rate, the injected rates and directions, the matrix files."""

from pathlib import Path

import numpy as np
import pytest

from auditor.cli import main
from auditor.config import resolve
from auditor.datasets import noise_matrix as nm
from auditor.datasets.noise import inject_noise
from auditor.errors import UserError

RAF_DB = ["Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral"]
AFFECTNET8 = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
VOTES = Path("/work/shared/fixtures/ferplus/fer2013new.csv")
HEADER = (
    "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
)


def votes_row(**counts: int) -> list[int]:
    return [counts.get(c, 0) for c in [*nm.EXPRESSIONS, "unknown", "NF"]]


def within(observed: float, p: float, n: int, sigmas: float = 4.5) -> bool:
    """`observed` (a frequency over n draws) is within `sigmas` standard errors of p."""
    return abs(observed - p) <= sigmas * np.sqrt(max(p * (1 - p), 1e-4) / n)


def test_the_human_confusion_is_estimated_from_hand_made_votes(tmp_path):
    rows = [
        votes_row(neutral=6, happiness=4),  # neutral: shares .6 / .4
        votes_row(neutral=8, sadness=1, unknown=1),  # neutral: 8/9, 1/9 (unknown left out)
        votes_row(neutral=5, happiness=5),  # a tie: dropped
        votes_row(unknown=6, anger=4),  # plurality unknown: dropped
        votes_row(NF=10),  # not a face: dropped
        votes_row(happiness=10),
        votes_row(happiness=7, surprise=2, fear=1),  # happiness: .7 .2 .1
        votes_row(surprise=9, fear=1),
        votes_row(sadness=10),
        votes_row(anger=5, disgust=3, contempt=2),
        votes_row(disgust=10),
        votes_row(fear=4, surprise=3, sadness=2, NF=1),  # fear: 4/9 3/9 2/9
        votes_row(contempt=7, anger=3),
    ]
    expected = np.zeros((8, 8))
    n, h, s, sa, a, d, f, c = range(8)
    expected[n, [n, h, sa]] = [(0.6 + 8 / 9) / 2, 0.4 / 2, (1 / 9) / 2]
    expected[h, [h, s, f]] = [(1 + 0.7) / 2, 0.2 / 2, 0.1 / 2]
    expected[s, [s, f]] = [0.9, 0.1]
    expected[sa, sa] = 1
    expected[a, [a, d, c]] = [0.5, 0.3, 0.2]
    expected[d, d] = 1
    expected[f, [f, s, sa]] = [4 / 9, 3 / 9, 2 / 9]
    expected[c, [c, a]] = [0.7, 0.3]
    assert np.allclose(nm.confusion_from_votes(np.array(rows)), expected)
    path = tmp_path / "fer2013new.csv"
    path.write_text(
        HEADER
        + "\n"
        + "\n".join(f"Training,x{i}.png," + ",".join(map(str, r)) for i, r in enumerate(rows))
        + "\n"
    )
    names, matrix = nm.estimate_human_fer(path)
    assert names == nm.EXPRESSIONS and np.allclose(matrix, expected)
    # the file the tool ships is written (and read back) in the matrix-file format
    shipped = nm.parse_matrix(nm.human_fer_csv(path), "here")
    assert shipped[0] == nm.EXPRESSIONS and np.allclose(shipped[1], expected, atol=1e-9)
    with pytest.raises(ValueError, match="no row has the plurality contempt"):
        nm.confusion_from_votes(np.array(rows[:-1]))


@pytest.mark.skipif(not VOTES.is_file(), reason="FERPlus votes fixture absent")
def test_the_shipped_human_matrix_is_the_estimate_from_ferplus_votes():
    names, estimate = nm.estimate_human_fer(VOTES)
    shipped_names, shipped = nm.human_fer_matrix()
    assert shipped_names == names
    assert np.allclose(shipped, estimate, atol=1e-9, rtol=0)


def test_the_shipped_human_matrix_is_row_stochastic_with_happiness_the_cleanest():
    names, matrix = nm.human_fer_matrix()
    assert names == nm.EXPRESSIONS and matrix.shape == (8, 8)
    assert np.allclose(matrix.sum(axis=1), 1) and (matrix >= 0).all()
    mass = 1 - np.diag(matrix)
    assert names[int(mass.argmin())] == "happiness" and names[int(mass.argmax())] == "disgust"
    # a tagger who does not vote the plurality of a sad face most often votes neutral
    assert names[int(np.argmax(matrix[3] * (1 - np.eye(8)[3])))] == "neutral"


def test_classes_map_by_expression_name_whatever_the_order_case_or_synonym():
    source = nm.human_fer_matrix()
    raf = nm.expression_matrix(RAF_DB, source)  # 7 classes: contempt left out, rows renormalised
    full = source[1]
    order = [nm.EXPRESSIONS.index(nm.canonical(c)) for c in RAF_DB]
    sub = full[np.ix_(order, order)]
    assert np.allclose(raf, sub / sub.sum(axis=1, keepdims=True))
    assert np.allclose(raf.sum(axis=1), 1)
    # AffectNet's 8 names (Happy, Sad, Anger, ...) in its own order: the full matrix, permuted
    aff = nm.expression_matrix(AFFECTNET8, source)
    order8 = [nm.EXPRESSIONS.index(nm.canonical(c)) for c in AFFECTNET8]
    assert np.allclose(aff, full[np.ix_(order8, order8)])
    shouty = nm.expression_matrix(["HAPPY", " sad ", "Surprised", "fearful", "neutral"], source)
    assert shouty.shape == (5, 5)


@pytest.mark.parametrize(
    ("classes", "needle"),
    [
        (["T-shirt/top", "Trouser", "Happy"], r"'T-shirt/top', 'Trouser' are not expressions"),
        (["cat", "Happy", "Sad"], r"'cat' is not an expression.*--noise-type matrix"),
        (["happy", "Happiness", "sad"], "'happy', 'Happiness' name the same expression"),
    ],
)
def test_classes_that_are_not_expressions_are_refused(classes, needle):
    labels = np.arange(len(classes)).repeat(10)
    with pytest.raises(UserError, match=needle):
        inject_noise(labels, len(classes), kind="human-fer", rate=0.2, seed=0, class_names=classes)


@pytest.mark.parametrize(("classes", "rate"), [(RAF_DB, 0.3), (AFFECTNET8, 0.2)])
def test_human_fer_noise_hits_the_rate_and_flips_along_the_human_confusion(classes, rate):
    k = len(classes)
    labels = np.repeat(np.arange(k), 2500)
    noisy = inject_noise(labels, k, kind="human-fer", rate=rate, seed=5, class_names=classes)
    assert within(noisy.real_rate, rate, len(labels), sigmas=4)
    assert np.array_equal(noisy.true, labels) and np.array_equal(noisy.mask, noisy.given != labels)
    used = np.array(noisy.details["matrix"])
    assert noisy.details["class_names"] == classes
    # the matrix used: the mapped human confusion with its off-diagonal scaled by s
    source = nm.expression_matrix(classes, nm.human_fer_matrix())
    off = ~np.eye(k, dtype=bool)
    assert np.allclose(used[off], noisy.details["scale"] * source[off])
    assert np.allclose(used.sum(axis=1), 1)
    assert noisy.details["native_rate"] == pytest.approx((1 - np.diag(source)).mean())
    # every cell of the empirical P(given | true) matches the matrix used: per-class flip
    # rates and flip directions
    for i in range(k):
        given = noisy.given[labels == i]
        observed = np.bincount(given, minlength=k) / len(given)
        for j in range(k):
            assert within(observed[j], used[i, j], len(given)), (classes[i], classes[j])
    again = inject_noise(labels, k, kind="human-fer", rate=rate, seed=5, class_names=classes)
    assert np.array_equal(again.given, noisy.given)


def test_the_rate_is_reached_over_the_labels_own_class_shares():
    """Skewed classes (RAF-DB has many happy faces, the cleanest class): s grows so that the
    expected flip rate over these labels is still the rate asked for."""
    counts = np.array([1600, 350, 900, 5000, 2000, 700, 2500])
    labels = np.repeat(np.arange(7), counts)
    noisy = inject_noise(labels, 7, kind="human-fer", rate=0.25, seed=1, class_names=RAF_DB)
    used = np.array(noisy.details["matrix"])
    assert (counts / counts.sum()) @ (1 - np.diag(used)) == pytest.approx(0.25)
    assert within(noisy.real_rate, 0.25, len(labels), sigmas=4)


def test_rates_out_of_reach_are_refused_naming_the_highest():
    labels = np.repeat(np.arange(7), 100)
    source = nm.expression_matrix(RAF_DB, nm.human_fer_matrix())
    mass = 1 - np.diag(source)
    highest = mass.mean() / mass.max()  # equal class shares
    assert 0.55 < highest < 0.7
    ok = inject_noise(labels, 7, kind="human-fer", rate=highest - 1e-3, seed=0, class_names=RAF_DB)
    assert np.array(ok.details["matrix"]).min() >= 0
    floor = f"{np.floor(highest * 1e4) / 1e4:g}"
    with pytest.raises(
        UserError, match=rf"out of reach.*noisiest class, Disgust.*at most {floor}$"
    ):
        inject_noise(labels, 7, kind="human-fer", rate=highest + 0.01, seed=0, class_names=RAF_DB)


def write(tmp_path, text: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_matrix_file_is_scaled_to_the_rate_and_used_as_is_at_its_own_rate(tmp_path):
    matrix = np.array([[0.8, 0.2, 0.0], [0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])
    path = write(tmp_path, "\n".join(",".join(map(str, r)) for r in matrix) + "\n")
    labels = np.repeat(np.arange(3), 3000)
    names = ["a", "b", "c"]
    native = ((1 - np.diag(matrix)) / 3).sum()  # 0.2
    kw = {"kind": "matrix", "seed": 2, "class_names": names, "matrix_file": str(path)}
    same = inject_noise(labels, 3, rate=native, **kw)
    assert np.allclose(same.details["matrix"], matrix) and same.details["scale"] == pytest.approx(1)
    half = inject_noise(labels, 3, rate=native / 2, **kw)
    used = np.array(half.details["matrix"])
    assert np.allclose(used, [[0.9, 0.1, 0.0], [0.05, 0.8, 0.15], [0.0, 0.0, 1.0]])
    assert within(half.real_rate, native / 2, len(labels))
    # zero cells stay zero: a never flips to c, c never flips
    assert not ((labels == 0) & (half.given == 2)).any() and (half.given[labels == 2] == 2).all()
    # b (off-diagonal 0.4 against 0.2 overall) flips every label at s = 2.5, rate 0.5
    assert np.array(inject_noise(labels, 3, rate=0.5, **kw).details["matrix"])[1, 1] == 0
    with pytest.raises(UserError, match=r"noisiest class, b .* at most 0.5$"):
        inject_noise(labels, 3, rate=0.55, **kw)


def test_a_matrix_file_header_reorders_rows_and_columns_to_the_dataset(tmp_path):
    path = write(
        tmp_path,
        "# my annotators, row = true class\nHappy,sadness,Neutral\n"
        "0.9,0.05,0.05\n0.0,0.7,0.3\n0.1,0.1,0.8\n",
    )
    labels = np.repeat(np.arange(3), 10)
    classes = ["neutral", "happiness", "sad"]
    noisy = inject_noise(
        labels, 3, kind="matrix", rate=0.15, seed=0, class_names=classes, matrix_file=str(path)
    )
    expected = np.array([[0.8, 0.1, 0.1], [0.05, 0.9, 0.05], [0.3, 0.0, 0.7]])
    scale = noisy.details["scale"]
    off = ~np.eye(3, dtype=bool)
    assert np.allclose(np.array(noisy.details["matrix"])[off], scale * expected[off])
    assert scale == pytest.approx(0.15 / (0.6 / 3))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("0.5,0.5\n0.5,x\n", r"m.csv, line 2: 'x' is not a number"),
        ("0.5,0.5\n0.5,0.5\n0.5,0.5\n", r"m.csv: not square: 3 rows of 2 values"),
        ("1,0,0\n0,1\n0,0,1\n", r"m.csv, line 2: expected 3 values, found 2"),
        ("1.2,-0.2\n0,1\n", r"m.csv, line 1: -0.2 is not a probability"),
        ("0.5,0.4\n0,1\n", r"m.csv, line 1: the row sums to 0.9, not 1"),
        ("nan,1\n0,1\n", r"m.csv, line 1: nan is not a probability"),
        ("a,a\n1,0\n0,1\n", r"m.csv, line 1: the header names a class twice: a"),
        ("a,b\n", r"m.csv: a header but no matrix rows"),
        ("# nothing\n\n", r"m.csv: no matrix rows found"),
    ],
)
def test_bad_matrix_files_are_refused_naming_the_file_and_the_fault(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(UserError, match="--noise-matrix .*" + needle):
        nm.read_matrix_csv(path)
    # refused when the options are resolved, before the dataset is loaded
    with pytest.raises(UserError, match=needle):
        resolve("demo", {"noise_type": "matrix", "noise_matrix": str(path)}, {})


def test_matrix_files_that_do_not_fit_the_dataset_are_refused(tmp_path):
    labels = np.repeat(np.arange(3), 5)
    kw = {"kind": "matrix", "rate": 0.1, "seed": 0, "class_names": ["a", "b", "c"]}
    two = write(tmp_path, "0.9,0.1\n0.1,0.9\n")
    with pytest.raises(UserError, match=r"m.csv: a 2 x 2 matrix, but the dataset has 3 classes"):
        inject_noise(labels, 3, matrix_file=str(two), **kw)
    named = write(tmp_path, "a,b,z\n1,0,0\n0,1,0\n0,0,1\n", "named.csv")
    with pytest.raises(
        UserError, match=r"named.csv: its header names z, which the dataset lacks, and lacks c"
    ):
        inject_noise(labels, 3, matrix_file=str(named), **kw)
    with pytest.raises(UserError, match=r"missing.csv: no such file"):
        inject_noise(labels, 3, matrix_file=str(tmp_path / "missing.csv"), **kw)
    with pytest.raises(UserError, match="--noise-type matrix needs --noise-matrix FILE"):
        inject_noise(labels, 3, **kw)


def test_bad_matrix_files_exit_2_before_any_run_folder(tmp_path, capsys):
    bad = write(tmp_path, "0.5,0.4\n0,1\n")
    out = tmp_path / "runs"
    argv = ["run", "demo", "--noise-type", "matrix", "--noise-matrix", str(bad), "--out", str(out)]
    assert main(argv) == 2
    assert (
        f"audit: error: --noise-matrix {bad}, line 1: the row sums to 0.9"
        in capsys.readouterr().err
    )
    assert not out.exists()


def test_the_manifest_records_the_matrix_used(tmp_path):
    import torch

    from auditor.datasets.table import ArrayImages, SampleTable
    from auditor.prepare import labels_for

    n = 700
    table = SampleTable(
        name="faces",
        class_names=RAF_DB,
        sample_ids=np.array([f"s{i}" for i in range(n)]),
        filepaths=np.array([f"f{i}" for i in range(n)]),
        labels=np.arange(n) % 7,
        split=np.array(["train"] * n),
        images=ArrayImages(np.zeros((n, 4, 4), np.uint8)),
    )
    config = resolve("faces", {"noise_type": "human-fer", "noise_rate": 0.2}, {})
    labels = labels_for(table, config, torch.zeros(n, 1, 4, 4, dtype=torch.uint8))
    noise = labels.noise
    assert noise["type"] == "human-fer" and noise["nominal_rate"] == 0.2
    assert noise["class_names"] == RAF_DB and len(noise["matrix"]) == 7
    assert all(isinstance(v, float) for row in noise["matrix"] for v in row)  # JSON-ready
    assert noise["real_rate"] == pytest.approx((labels.given != labels.true).mean())
    matrix_file = write(tmp_path, "0.9,0.1\n0.2,0.8\n")
    two = SampleTable(
        name="pairs",
        class_names=["x", "y"],
        sample_ids=table.sample_ids,
        filepaths=table.filepaths,
        labels=np.arange(n) % 2,
        split=table.split,
        images=table.images,
    )
    config = resolve(
        "pairs", {"noise_type": "matrix", "noise_matrix": str(matrix_file), "noise_rate": 0.15}, {}
    )
    noise = labels_for(two, config, torch.zeros(n, 1, 4, 4, dtype=torch.uint8)).noise
    assert noise["matrix_file"] == str(matrix_file) and config.as_dict()["noise_matrix"] == str(
        matrix_file
    )
    assert np.allclose(noise["matrix"], [[0.9, 0.1], [0.2, 0.8]])  # 0.15 is its own rate here
    with pytest.raises(UserError, match="are not expressions"):
        labels_for(
            two,
            resolve("pairs", {"noise_type": "human-fer", "noise_rate": 0.2}, {}),
            torch.zeros(n, 1, 4, 4, dtype=torch.uint8),
        )


def test_the_new_noise_types_are_in_audit_run_help(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["run", "--help"])
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "human-fer, matrix" in text and "--noise-matrix NOISE_MATRIX" in text
    assert "matrix noise options" in text
