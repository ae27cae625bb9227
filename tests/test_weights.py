"""--weights: common checkpoint layouts load strictly; mismatches and code-running pickles are
refused."""

import os
import zipfile

import pytest
import torch
import torchvision

from auditor.errors import UserError
from methods.backbones import build_backbone
from methods.weights import MAX_WRAPPERS, load_backbone_weights, read_checkpoint


@pytest.fixture(scope="module")
def tv_resnet18_state():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


def assert_loaded(state, path, backbone_name="resnet18"):
    backbone = build_backbone(backbone_name, 3)
    weights, report = load_backbone_weights(str(path), backbone, backbone_name)
    assert report.matched == report.expected and not report.missing
    backbone.load_state_dict(weights)
    for name, tensor in backbone.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(tensor, state[name]), name
    return report


def test_msceleb_layout_loads_every_tensor(tv_resnet18_state, tmp_path):
    # resnet18_msceleb.pth: {'state_dict': ...} with torchvision's names and an identity fc
    state = {k: v for k, v in tv_resnet18_state.items() if not k.startswith("fc.")}
    state |= {"fc.weight": torch.zeros(12, 512), "fc.bias": torch.zeros(12)}
    path = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": state, "epoch": 30}, path)
    report = assert_loaded(tv_resnet18_state, path)
    assert report.expected == 100  # resnet18's body: 20 conv weights + 20 BatchNorms x 4 tensors
    assert sorted(report.unused) == ["fc.bias", "fc.weight"]
    assert "matched 100/100" in report.summary()


@pytest.mark.parametrize("prefix", ["", "module.", "feat_net.", "module.features."])
def test_raw_and_prefixed_state_dicts(tv_resnet18_state, tmp_path, prefix):
    path = tmp_path / "w.pth"
    torch.save({prefix + k: v for k, v in tv_resnet18_state.items()}, path)
    assert_loaded(tv_resnet18_state, path)


def test_mobilenet_keeps_its_features_prefix(tmp_path):
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    path = tmp_path / "m.pth"
    torch.save({"model": state}, path)
    assert_loaded(state, path, "mobilenet_v2")


def test_mismatched_checkpoint_is_refused(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(UserError, match=r"matched only \d+ of 100 backbone tensors") as err:
        load_backbone_weights(str(path), build_backbone("resnet18", 3), "resnet18")
    assert "--allow-partial-weights" in str(err.value) and "shape mismatches" in str(err.value)
    _, report = load_backbone_weights(
        str(path), build_backbone("resnet18", 3), "resnet18", allow_partial=True
    )
    assert report.matched < report.expected


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "x": RunsCode(marker)}, path)
    with pytest.raises(UserError, match="refused"):
        load_backbone_weights(str(path), build_backbone("resnet18", 3), "resnet18")
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a PyTorch checkpoint|refused"):
        load_backbone_weights(str(path), build_backbone("resnet18", 3), "resnet18")
    with pytest.raises(UserError, match="no such file"):
        load_backbone_weights(str(tmp_path / "nope.pth"), build_backbone("resnet18", 3), "resnet18")


def test_a_mapping_that_contains_itself_is_refused_not_followed_forever(tmp_path):
    loop = {"conv1.weight": torch.zeros(1)}
    loop["state_dict"] = loop
    torch.save(loop, tmp_path / "loop.pth")
    with pytest.raises(UserError, match="contains itself"):
        read_checkpoint(tmp_path / "loop.pth")
    deep = {"conv1.weight": torch.zeros(1)}
    for _ in range(MAX_WRAPPERS + 1):
        deep = {"state_dict": deep}
    torch.save(deep, tmp_path / "deep.pth")
    with pytest.raises(UserError, match="levels deep"):
        read_checkpoint(tmp_path / "deep.pth")


def test_a_zip_bomb_checkpoint_is_refused_before_it_is_inflated(tmp_path):
    """A real checkpoint of 64 MB of zeros, recompressed: 64 KB asking for 64 MB. torch.load
    would inflate it; it is refused from the zip directory alone."""
    plain = tmp_path / "plain.pth"
    torch.save({"conv1.weight": torch.zeros(16 * 2**20)}, plain)
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert bomb.stat().st_size < 2**20
    with pytest.raises(UserError, match="declares 0.07 GB"):
        read_checkpoint(bomb)
    assert set(read_checkpoint(plain)) == {"conv1.weight"}  # stored, as torch.save writes it


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_checkpoint_holding_nan_or_infinity_is_refused_naming_the_tensor(
    tv_resnet18_state, tmp_path, bad
):
    state = dict(tv_resnet18_state)
    state["layer2.0.conv1.weight"] = state["layer2.0.conv1.weight"].clone()
    state["layer2.0.conv1.weight"][0, 0, 0, :2] = bad
    path = tmp_path / "diverged.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(UserError, match=r"diverged.pth: tensor 'layer2.0.conv1.weight' holds 2 "):
        load_backbone_weights(str(path), build_backbone("resnet18", 3), "resnet18")
