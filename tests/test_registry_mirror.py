"""The registry's `mirror_symmetric` key: declared true or false, absent (not declared), or
refused naming the file and line when it is not true or false."""

import pytest

from auditor.datasets.registry import load_registry
from auditor.errors import UserError


def test_mirror_symmetry_is_read_when_declared_and_none_when_not(tmp_path):
    path = tmp_path / "datasets.yaml"
    path.write_text(
        "faces:\n  kind: csv\n  mirror_symmetric: true\n"
        "digits:\n  kind: csv\n  mirror_symmetric: false\n"
        "mine:\n  kind: csv\n"
        "unsaid:\n  kind: csv\n  mirror_symmetric: null\n"
    )
    registry = load_registry(path)
    assert registry["faces"].mirror_symmetric is True
    assert registry["digits"].mirror_symmetric is False
    assert registry["mine"].mirror_symmetric is None
    assert registry["unsaid"].mirror_symmetric is None
    assert "mirror_symmetric" not in registry["faces"].options  # not a loader's own key


@pytest.mark.parametrize(
    ("value", "found"),
    [("1", "a number (1)"), ("'yes'", "text"), ("[true]", "a list")],
)
def test_a_mirror_symmetry_that_is_not_true_or_false_is_refused_with_its_line(
    tmp_path, value, found
):
    path = tmp_path / "datasets.yaml"
    path.write_text(f"x:\n  kind: csv\n  root: /a\n  mirror_symmetric: {value}\n")
    with pytest.raises(UserError, match=f"^{path}, line 4: ") as refused:
        load_registry(path)
    assert f"`mirror_symmetric` of dataset 'x' must be true or false, found {found}" in str(
        refused.value
    )


def test_the_shipped_registry_declares_faces_and_fashion_mnist_symmetric_not_user_folders():
    registry = load_registry()
    faces = ["synth-faces", "raf-db", "ferplus", "ferplus-annotator", "ferplus-fer2013"]
    declared = [*faces, "affectnet", "affectnet8", "demo", "demo-long", "fashion-mnist"]
    assert all(registry[name].mirror_symmetric is True for name in declared)
    assert registry["imagefolder"].mirror_symmetric is None
    assert registry["csv"].mirror_symmetric is None
