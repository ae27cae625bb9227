"""The package's layers, read from the imports of its source files (lazy imports inside
functions included): what draws and writes never runs a model, and nothing below the writers
reaches up into them for helpers."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (`from a.b import c` gives a.b and a.b.c)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{alias.name}" for alias in node.names}
    return out


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def sources(*patterns: str) -> list[Path]:
    files = sorted({p for pattern in patterns for p in REPO.glob(pattern)})
    assert files, patterns
    return files


DRAWERS = sources("auditor/outputs/*.py", "auditor/review.py", "auditor/review_marks.py")
# what the writers may be imported by: the commands that write or read a run folder
WRITERS_USERS = {
    "cli",
    "commands",
    "run",
    "run_outputs",
    "predictions",
    "compare",
    "corrections",
    "decisions",
    "review",
    "resume",
    "api",
    "run_start",
    "fiftyone_results",
}
BELOW_WRITERS = [
    p
    for p in sources("auditor/**/*.py", "methods/*.py")
    if "outputs" not in p.parts and p.stem not in WRITERS_USERS
]


@pytest.mark.parametrize("path", DRAWERS, ids=lambda p: str(p.relative_to(REPO)))
def test_outputs_and_review_import_neither_methods_nor_training(path):
    bad = [m for m in imported_modules(path) if under(m, "methods") or under(m, "auditor.training")]
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", BELOW_WRITERS, ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_below_the_writers_imports_them(path):
    bad = [m for m in imported_modules(path) if under(m, "auditor.outputs")]
    assert not bad, f"{path.name} imports {bad}"


def test_the_reader_sees_lazy_imports(tmp_path):
    """The check itself: an import inside a function counts."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from methods.cam import class_activation_maps\n")
    assert "methods.cam" in imported_modules(probe)


# The foundation: modules every layer may import, which import only each other.
BASE = {
    "errors",
    "fsutil",
    "options",
    "csv_cells",
    "damage",
    "evidence",
    "resources",
    "checkpoint_files",
}
LOWER = ("auditor.datasets", "auditor.training", "auditor.detectors", "methods")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def allowed_below(module: str, own: tuple[str, ...]) -> bool:
    """Whether `module` (of this repository) may be imported from the layer of the packages
    `own`: one of those packages or a BASE module."""
    if not module.startswith(("auditor", "methods")) or module == "auditor":
        return True
    return any(under(module, p) for p in own) or module.split(".")[1] in BASE


@pytest.mark.parametrize(
    "path",
    sources(
        "auditor/datasets/**/*.py",
        "auditor/training/*.py",
        "auditor/detectors/*.py",
        "methods/*.py",
    ),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_the_lower_packages_import_nothing_above_them(path):
    """Datasets, training, detectors and methods see each other and the BASE modules, never
    the config, the phases of a run, the writers, the write guard or the commands."""
    bad = [m for m in imported_modules(path) if not allowed_below(m, LOWER)]
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize(
    "path", [REPO / "auditor" / f"{m}.py" for m in sorted(BASE)], ids=lambda p: p.name
)
def test_the_base_modules_import_only_each_other(path):
    bad = [m for m in imported_modules(path) if not allowed_below(m, ())]
    assert not bad, f"{path.name} imports {bad}"


MAX_MODULE_LINES = 350  # a module past this is split by what it does (issue 29)
MAX_RUN_LINES = 200  # run.py only sequences the phases


@pytest.mark.parametrize(
    "path", sources("auditor/**/*.py", "methods/*.py"), ids=lambda p: str(p.relative_to(REPO))
)
def test_no_module_outgrows_its_limit(path):
    limit = MAX_RUN_LINES if path == REPO / "auditor" / "run.py" else MAX_MODULE_LINES
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= limit, f"{path.name} has {lines} lines, over {limit}: split it"
