import math
import re
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.cli import main
from auditor.config import CORE, RunConfig, declared_defaults, from_dict, resolve
from auditor.errors import UserError
from auditor.options import public_name, spec_of, value_type
from methods import METHODS


def test_precedence_cli_over_preset_over_dataset_over_tool():
    dataset_defaults = {
        "epochs": 10,
        "image_size": 28,
        "backbone": "resnet-small",
        "noise_rate": 0.3,
    }
    c = resolve("demo", {"preset": "paper", "epochs": 2}, dataset_defaults)
    assert (c.backbone, c.image_size, c.lr, c.batch_size, c.methods["eac"].lam) == (
        "resnet18",
        224,
        2e-4,
        256,
        5.0,
    )
    assert c.epochs == 2  # the command line wins
    assert c.methods["scn"].lr == 1e-3  # SCN's official rate (Adam's default), the others 2e-4
    assert c.noise_rate == 0.3  # the dataset's default survives the preset
    plain = resolve("demo", {}, dataset_defaults)
    assert (plain.backbone, plain.image_size, plain.epochs) == ("resnet-small", 28, 10)


def test_methods_comma_separated_and_repeated():
    c = resolve("demo", {"method": ["ce,eac", "scn", "ce"]}, {})
    assert c.method == ["ce", "eac", "scn"]
    assert (c.methods["scn"].relabel, c.methods["scn"].loss) == ("all", "code")  # official code
    assert (c.methods["eac"].lam, c.methods["eac"].erasure) == (5.0, "same")


@pytest.mark.parametrize(
    ("cli", "needle"),
    [
        ({"preset": "fast"}, "--preset fast"),
        ({"scn_loss": "other"}, "--scn-loss other"),
        ({"backbone": "vgg"}, "--backbone vgg"),
        ({"noise_file": "x.txt", "noise_rate": 0.2}, "--noise-file and --noise-rate"),
    ],
)
def test_bad_options_are_named(cli, needle):
    with pytest.raises(UserError, match=needle):
        resolve("demo", cli, {})


def bad_values(owner, f) -> list:
    """Values the declaration of field `f` must refuse: off the choices, NaN, past each bound."""
    spec = spec_of(f)
    if value_type(owner, f) is bool:
        return []  # a flag without a value: nothing to get wrong on the command line
    if spec.choices is not None:
        return ["bogus"]
    out = ["nan"] if value_type(owner, f) is float else []
    for bound, step in ((spec.at_least, -1), (spec.above, 0), (spec.at_most, 1), (spec.below, 0)):
        if bound is not None:
            out.append(str(bound + step))
    return out


METHOD_OPTIONS = [
    (name, public_name(f), value)
    for name, cls in METHODS.items()
    for f in fields(cls.options_class)
    for value in bad_values(cls.options_class, f)
]


def test_every_method_option_has_a_bad_value_to_try():
    """On/off options take no value on the command line; a wrong type from datasets.yaml or a
    preset is refused like any other bad value."""
    declared = {
        (n, public_name(f))
        for n, c in METHODS.items()
        for f in fields(c.options_class)
        if value_type(c.options_class, f) is not bool
    }
    assert declared == {(n, o) for n, o, _ in METHOD_OPTIONS}
    assert ("eac", "lambda") in declared and ("scn", "relabel_epoch") in declared
    with pytest.raises(UserError, match="--eac-flip 'yes': must be bool"):
        resolve("demo", {}, {"eac_flip": "yes"})


def assert_refused_naming(flag: str, argv: list[str], out: Path, capsys) -> None:
    """`audit run demo ARGV --out OUT` exits 2 naming `flag`, before any run folder."""
    assert main(["run", "demo", *argv, "--out", str(out)]) == 2
    assert f"audit: error: {flag} " in capsys.readouterr().err
    assert not any(out.iterdir())  # refused before any run folder or training


@pytest.mark.parametrize(("method", "option", "value"), METHOD_OPTIONS)
def test_bad_method_options_exit_2_before_training_naming_the_option(
    method, option, value, tmp_path, capsys
):
    flag = f"--{method}-{option.replace('_', '-')}"
    assert_refused_naming(flag, ["--method", method, flag, value], tmp_path, capsys)


CORE_OPTIONS = [(f.name, value) for f in CORE for value in bad_values(RunConfig, f)]


@pytest.mark.parametrize(("option", "value"), CORE_OPTIONS)
def test_bad_core_options_exit_2_before_training_naming_the_option(option, value, tmp_path, capsys):
    """Past every bound of every core option (the upper ones too: --seed 2**32 failed in NumPy's
    seeding, --epochs 10**9 asked for terabytes, --lr 1e30 trained NaN)."""
    flag = f"--{option.replace('_', '-')}"
    assert_refused_naming(flag, [flag, value], tmp_path, capsys)


def test_every_bounded_core_option_is_tried():
    tried = {option for option, _ in CORE_OPTIONS}
    assert {"seed", "epochs", "lr", "weight_decay", "image_size", "workers", "folds"} <= tried


def test_the_manifest_config_round_trips_with_the_chosen_parts_options_only():
    cli = {"method": ["scn", "eac"], "scn_beta": 0.5, "eac_lambda": 2.0}
    c = resolve("demo", cli | {"noise_type": "asymmetric", "noise_sparsity": 0.4}, {"epochs": 3})
    again = from_dict("demo", c.as_dict())
    assert again == c and again.methods["scn"].beta == 0.5 and again.methods["eac"].lam == 2.0
    assert again.noise_models["asymmetric"].sparsity == 0.4
    recorded = resolve("demo", {"method": ["ce"]}, {}).as_dict()
    assert not [k for k in recorded if k.startswith(("eac_", "scn_", "gsmc_", "noise_sparsity"))]
    with pytest.raises(UserError, match="unknown options eac_lamda"):
        from_dict("demo", c.as_dict() | {"eac_lamda": 1.0})


def test_unknown_dataset_defaults_are_refused():
    with pytest.raises(UserError, match="unknown options: epoch"):
        resolve("demo", {}, {"epoch": 3})


def test_core_options_are_checked_like_method_options():
    for cli, needle in (
        ({"lr": math.nan}, "--lr nan: must be a finite number"),
        ({"folds": 0}, "--folds 0: must be at least 1"),
        ({"epochs": "ten"}, "--epochs 'ten': must be int"),
        ({"noise_rate": 1.0}, "--noise-rate 1.0: must be below 1"),
        ({"seed": 2**64}, "--seed 18446744073709551616: must be at most 4294967295"),
        ({"seed": 10**5000}, r"--seed 10\^5000.0: must be at most"),  # too long to print
    ):
        with pytest.raises(UserError, match=needle):
            resolve("demo", cli, {})
    with pytest.raises(UserError, match="--lr None: must be float, it cannot be unset"):
        resolve("demo", {}, {"lr": None})  # `lr: null` in datasets.yaml, or in a manifest


@pytest.mark.slow
def test_main_records_the_argv_it_was_given_not_the_process_argv(tmp_path, capsys):
    import json
    import sys

    argv = [
        "run",
        "demo",
        "--limit",
        "60",
        "--epochs",
        "1",
        "--method",
        "ce",
        "--no-report",
        "--out",
        str(tmp_path),
    ]
    assert sys.argv[1:] != argv  # pytest's own arguments
    assert main(argv) == 0
    (run_dir,) = (tmp_path / "demo").iterdir()
    assert json.loads((run_dir / "manifest.json").read_text())["command"] == ["audit", *argv]


@pytest.mark.slow
def test_fold_class_sizes_are_checked_before_training_and_before_the_run_folder(tmp_path, capsys):
    argv = ["run", "demo", "--limit", "20", "--folds", "5", "--epochs", "1", "--out", str(tmp_path)]
    assert main(argv) == 2  # 20 samples over 10 classes (given labels noisy): too few for 5 folds
    err = capsys.readouterr().err
    assert re.search(r"--folds 5: the smallest class has only [1-4] training samples", err)
    assert not any(tmp_path.iterdir())


def test_bad_options_are_refused_before_torchrun_starts(tmp_path, capsys):
    argv = ["run", "demo", "--nproc", "2", "--eac-lambda", "-1", "--out", str(tmp_path)]
    assert main(argv) == 2  # not torchrun's exit code 1 after two processes failed
    assert "--eac-lambda -1.0: must be at least 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_option_name_taken_twice_is_named(capsys):
    """A plug-in method `lr` with an option `gamma` would be `--lr-gamma`, a core option."""
    from dataclasses import dataclass

    from auditor.options import Options, option
    from methods.base import Method, register_method

    @dataclass(frozen=True)
    class ClashOptions(Options):
        gamma: float = option(1.0, "clashes with --lr-gamma")

    @register_method
    class Clash(Method):
        name = "lr"
        options_class = ClashOptions

    try:
        assert main(["run", "demo", "--method", "lr"]) == 2
        assert "lr's option lr_gamma has the name of a core option" in capsys.readouterr().err
        assert main(["datasets"]) == 0  # the other commands do not build the run flags
    finally:
        del METHODS["lr"]


# Any value an option may meet: from the command line (typed), datasets.yaml (any YAML scalar or
# list) or a manifest's config (any JSON value).
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**31, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["ce", "eac,scn", "paper", "same", "official", "auto", "1e-3", "nan"]),
    st.lists(st.text(max_size=6), max_size=3),
)
OPTION_KEYS = sorted(declared_defaults())


@settings(max_examples=400, deadline=None)
@given(
    cli=st.dictionaries(st.sampled_from(OPTION_KEYS), ANY_VALUE, max_size=6),
    dataset_defaults=st.dictionaries(st.sampled_from(OPTION_KEYS), ANY_VALUE, max_size=3),
)
def test_any_option_values_give_a_config_or_a_refusal_naming_an_option(cli, dataset_defaults):
    """Whatever the values of the declared options, the configuration layer returns a RunConfig
    whose every option passes its declaration, or refuses with a UserError naming an option:
    never another exception (which would surface only once training had started)."""
    try:
        config = resolve("demo", cli, dataset_defaults)
    except UserError as err:
        assert re.search(r"--[a-z]|option", str(err)), err
        return
    recorded = config.as_dict()
    assert from_dict("demo", recorded).as_dict() == recorded  # what a manifest records resumes


def test_paths_are_recorded_absolute(tmp_path, monkeypatch):
    """A run records `--root data` as an absolute path: export, apply and compare find the
    dataset's root (and refuse writes into it) from any working directory."""
    monkeypatch.chdir(tmp_path)
    config = resolve("demo", {"root": "data", "labels": "~/fixed.csv", "noise_file": None}, {})
    assert config.root == str(tmp_path / "data")
    assert config.labels == str(Path.home() / "fixed.csv") and config.noise_file is None
