import pytest

from auditor.config import resolve
from auditor.errors import UserError


def test_precedence_cli_over_preset_over_dataset_over_tool():
    dataset_defaults = {
        "epochs": 10,
        "image_size": 28,
        "backbone": "resnet-small",
        "noise_rate": 0.3,
    }
    c = resolve("demo", {"preset": "paper", "epochs": 2}, dataset_defaults)
    assert (c.backbone, c.image_size, c.lr, c.batch_size, c.eac_lambda) == (
        "resnet18",
        224,
        2e-4,
        256,
        5.0,
    )
    assert c.epochs == 2  # the command line wins
    assert c.noise_rate == 0.3  # the dataset's default survives the preset
    plain = resolve("demo", {}, dataset_defaults)
    assert (plain.backbone, plain.image_size, plain.epochs) == ("resnet-small", 28, 10)


def test_methods_comma_separated_and_repeated():
    c = resolve("demo", {"method": ["ce,eac", "scn", "ce"]}, {})
    assert c.method == ["ce", "eac", "scn"]
    assert c.method_options("scn")["relabel_scope"] == "low"
    assert c.method_options("eac") == {"lam": 5.0, "erasure": "same"}


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
