"""Annotators' marks read as decisions (`auditor.annotations`), the review ledger
(`auditor.ledger`) and where commands may write (`auditor.write_guard`), on hand-made inputs."""

import json

import pandas as pd
import pytest

from auditor import ledger
from auditor.annotations import Marks, decide, read_marks
from auditor.decisions import read_decisions
from auditor.errors import UserError
from auditor.write_guard import check_out

CLASSES = ["Surprise", "Fear", "Happiness"]


def marks(**kw) -> Marks:
    return Marks(sample_id=kw.pop("sid", "s"), given=kw.pop("given", "Fear"), **kw)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"sample_tags": ("relabel",)}, ("relabel", None)),
        ({"sample_tags": ("Relabel ",)}, ("relabel", None)),  # any case, spaces
        ({"sample_tags": ("KEEP",)}, ("keep", None)),
        ({"sample_tags": ("drop",)}, ("drop", None)),
        ({"label_tags": {"given": ("relabel",)}}, ("relabel", None)),  # label tags mode
        ({"label_tags": {"given": ("keep",)}}, ("keep", None)),
        # a relabel tag on the suggestion's chip means "to this class"
        (
            {
                "label_tags": {"suggested": ("relabel",)},
                "field_labels": {"suggested": "Happiness", "given": "Fear"},
            },
            ("relabel", 2),
        ),
        ({"corrected": "Surprise"}, ("relabel", 0)),  # a correction alone is a decision
        ({"sample_tags": ("relabel", "label:happiness")}, ("relabel", 2)),  # unambiguous case
        ({"sample_tags": ("label:Surprise",)}, ("relabel", 0)),
        ({"sample_tags": ("relabel",), "corrected": "Surprise"}, ("relabel", 0)),
        ({"sample_tags": ("keep",), "corrected": "Fear"}, ("keep", None)),  # the given class
        ({"sample_tags": ("note: blurry",)}, None),
        ({}, None),
    ],
)
def test_each_mark_becomes_one_decision(kw, expected):
    assert decide(marks(**kw), CLASSES) == expected


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"sample_tags": ("keep", "drop")}, "tagged keep and drop"),
        (
            {"sample_tags": ("relabel",), "label_tags": {"given": ("Keep",)}},
            "tagged relabel and keep",
        ),
        ({"sample_tags": ("label:Fear", "label:Surprise")}, "names two classes"),
        ({"sample_tags": ("label:Surprise",), "corrected": "Happiness"}, "names two classes"),
        ({"sample_tags": ("label:Angry",)}, "'Angry' is not a class"),
        ({"corrected": "Angry"}, "`corrected`: 'Angry' is not a class"),
        ({"sample_tags": ("relabled",)}, "'relabled' is not a decision"),
        (
            {"label_tags": {"prediction": ("todo",)}},
            "tag on `prediction` 'todo' is not a decision",
        ),
        (
            {"sample_tags": ("keep",), "corrected": "Surprise"},
            "tagged keep but names class 'Surprise'",
        ),
        ({"sample_tags": ("drop",), "corrected": "Surprise"}, "tagged drop but names class"),
    ],
)
def test_every_other_mark_is_refused_with_a_reason(kw, needle):
    outcome = decide(marks(**kw), CLASSES)
    assert isinstance(outcome, str) and needle in outcome, outcome


def test_read_marks_refuses_all_at_once():
    good = [
        marks(sid="a", sample_tags=("keep",)),
        marks(sid="b", corrected="Surprise"),
        marks(sid="c", sample_tags=("note: later",)),
    ]
    reading = read_marks(good, CLASSES, "ds")
    assert reading.decided == {"a": ("keep", None), "b": ("relabel", 0)}
    assert reading.undecided == ("c",)
    with pytest.raises(UserError, match=r"ds: 1 samples .* d: tagged keep and drop"):
        read_marks([*good, marks(sid="d", sample_tags=("keep", "drop"))], CLASSES, "ds")


def test_relabel_csv_prefers_the_annotators_own_class(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text(
        "sample_id,suggested_label,suggested_name,new_label,new_name,decision\n"
        "a,2,Happiness,0,,relabel\n"  # a hand-filled new_label beats the suggestion
        "b,2,Happiness,,Surprise,relabel\n"
        "c,2,Happiness,0,Fear,relabel\n"  # the annotator's two columns disagree
    )
    with pytest.raises(
        UserError, match="line 4: relabel 'c': new_name 'Fear' and new_label '0' disagree"
    ):
        read_decisions(csv, ["a", "b", "c"], CLASSES)
    csv.write_text(csv.read_text().rsplit("c,", 1)[0])
    assert read_decisions(csv, ["a", "b", "c"], CLASSES).relabel == {"a": 0, "b": 0}


def decisions_frame(rows):
    return pd.DataFrame(rows, columns=["sample_id", "decision", "label", "given", "source"])


def test_ledger_appends_latest_wins_and_reads_against_a_run(tmp_path):
    path = tmp_path / "ledger.csv"
    first = decisions_frame(
        [
            ("a", "keep", "Fear", "Fear", "x"),
            ("b", "relabel", "Surprise", "Fear", "x"),
            ("c", "drop", "", "Fear", "x"),
            ("d", "relabel", "=cmd", "Fear", "x"),
        ]
    )
    assert ledger.append(path, first, "run1", "ann") == 4
    assert ledger.append(path, first, "run1", "ann") == 0  # the same again: nothing repeated
    again = decisions_frame([("a", "relabel", "Happiness", "Fear", "y")])
    assert ledger.append(path, again, "run2", "ann") == 1
    rows = ledger.read_ledger(path)
    assert len(rows) == 5 and rows["label"].iloc[3] == "=cmd"  # neutralised on disk, read back
    assert "'=cmd" in path.read_text()
    samples = pd.DataFrame(
        {
            "sample_id": ["a", "b", "c", "e", "b2"],
            "given_name": ["Fear", "Surprise", "Fear", "Fear", "Fear"],
            "flag_suspicion": [True, True, False, True, False],
        }
    )
    state = ledger.review_state(samples, rows)
    # a: latest decision relabel to Happiness, but the run still says Fear: not applied
    assert state["reviewed"].tolist() == [False, True, False, False, False]
    assert state["not_applied"].tolist() == [True, False, True, False, False]
    assert state["disagreement"].tolist() == [False, True, False, False, False]
    assert "1 samples already reviewed" in ledger.state_sentence(state, path)


def test_the_ledger_keeps_who_decided_and_notes_and_finds_second_looks(tmp_path, monkeypatch):
    path = tmp_path / "ledger.csv"
    rows = decisions_frame(
        [
            ("a", "keep", "Fear", "Fear", "x"),
            ("b", "relabel", "Surprise", "Fear", "x"),
            ("c", "relabel", "Surprise", "Fear", "x"),
            ("d", "", "", "Fear", "x"),  # a remark only
        ]
    ).assign(note=["blurry", "", "", "occluded"])
    assert ledger.append(path, rows, "run1", "alice") == 4
    assert ledger.append(path, rows, "run1", "bob") == 0  # nothing new, whoever exports
    noted = rows.iloc[[1]].assign(note="ask Carol")
    assert ledger.append(path, noted, "run1", "bob") == 1  # a new note is new
    samples = pd.DataFrame(
        {
            "sample_id": ["a", "b", "c", "d"],
            "given_name": ["Fear", "Surprise", "Surprise", "Fear"],
            "given_label": [1, 0, 0, 1],
            "suggested_label": [1, 0, 2, 1],
            "flag_suspicion": [True, True, True, True],
        }
    )
    state = ledger.review_state(samples, ledger.read_ledger(path))
    assert state["review_reviewer"].tolist() == ["alice", "bob", "alice", ""]
    assert state["review_note"].tolist() == ["blurry", "ask Carol", "", "occluded"]
    assert state["reviewed"].tolist() == [True, True, True, False]
    # a kept and flagged again; c relabelled, flagged again, another class suggested; b's
    # suggestion is its corrected class: a disagreement, not a contradiction
    assert state["second_look"].tolist() == [True, False, True, False]
    # a ledger written before notes were kept reads with empty notes
    old = tmp_path / "old.csv"
    ledger.read_ledger(path).drop(columns="note").to_csv(old, index=False)
    assert (ledger.read_ledger(old)["note"] == "").all()
    monkeypatch.setenv("AUDIT_REVIEWER", "carol")
    assert ledger.reviewer_name(None) == "carol" and ledger.reviewer_name(" dan ") == "dan"
    for bad in ("", "a\nb", "x" * 101):
        with pytest.raises(UserError, match="--reviewer must be a name"):
            ledger.reviewer_name(bad)


def test_notes_are_read_from_every_tag_with_their_prefix_removed():
    reading = read_marks(
        [
            marks(sid="a", sample_tags=("keep", "note: blurry"), label_tags={"given": ("NOTE:x",)}),
            marks(sid="b", sample_tags=("note:", "note: y", "note:y")),
        ],
        CLASSES,
        "ds",
    )
    assert reading.notes == {"a": "blurry; x", "b": "y"}
    assert reading.undecided == ("b",)


def test_a_damaged_ledger_is_refused(tmp_path):
    path = tmp_path / "ledger.csv"
    path.write_text("sample_id,decision\na,keep\n")
    with pytest.raises(UserError, match="lacks the columns"):
        ledger.read_ledger(path)


def test_writes_never_go_into_a_root_or_over_a_run_file(tmp_path):
    root = tmp_path / "dataset"
    root.mkdir()
    run = tmp_path / "reports" / "demo" / "run1"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"run_id": "run1"}))
    (run / "relabel.csv").write_text("x")
    with pytest.raises(UserError, match="inside the dataset's root"):
        check_out(root / "new-labels.csv", dataset_roots=[root])  # a new file, too
    with pytest.raises(UserError, match="would overwrite relabel.csv"):
        check_out(run / "relabel.csv")
    with pytest.raises(UserError, match="would overwrite manifest.json"):
        check_out(run / "manifest.json", own=("relabel-reviewed.csv",))
    with pytest.raises(UserError, match="is a folder"):
        check_out(run)
    with pytest.raises(UserError, match="label file the run trained on"):
        check_out(tmp_path / "l.csv", labels_file=str(tmp_path / "l.csv"))
    (run / "relabel-reviewed.csv").write_text("x")
    assert check_out(run / "relabel-reviewed.csv", own=("relabel-reviewed.csv",))
    assert check_out(run / "new.csv") == (run / "new.csv").resolve()


@pytest.mark.parametrize("cell", ["\u00b2", "9" * 5000, "-1", "1.0", "\uff11"])
def test_a_class_id_cell_that_is_not_a_plain_number_is_refused_naming_the_line(tmp_path, cell):
    """`'²'.isdigit()` is True and 5000 digits are beyond int(): refusals, never an error."""
    csv = tmp_path / "d.csv"
    csv.write_text(f"sample_id,new_label,decision\na,{cell},relabel\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 2: relabel 'a': new_label .* is not a class"):
        read_decisions(csv, ["a"], CLASSES)
