"""EAC's loss and CAMs against values computed by hand on tiny tensors."""

import math

import pytest
import torch

from methods.cam import class_activation_maps, flip_cam_disagreement
from methods.eac import eac_loss


def test_cam_is_fc_weight_applied_to_the_feature_map():
    # F: 1 sample, 2 channels, 1x2 map; W: 2 classes x 2 channels
    fmap = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    weight = torch.tensor([[1.0, 0.0], [0.5, -1.0]])
    cam = class_activation_maps(fmap, weight)
    # class 0: 1*F0 + 0*F1 = [1, 2]; class 1: 0.5*F0 - F1 = [0.5-3, 1-4] = [-2.5, -3]
    assert cam.shape == (1, 2, 1, 2)
    assert torch.equal(cam, torch.tensor([[[[1.0, 2.0]], [[-2.5, -3.0]]]]))


def test_flip_cam_disagreement_by_hand():
    cam1 = torch.tensor([[[[1.0, 2.0]], [[0.0, 0.0]]]])  # [1, 2, 1, 2]
    cam2 = torch.tensor([[[[1.0, 2.0]], [[1.0, 3.0]]]])
    # hflip(cam2) = [[2, 1]], [[3, 1]]; differences: [-1, 1], [-3, -1]; squares 1,1,9,1; mean 3
    assert flip_cam_disagreement(cam1, cam2).tolist() == [3.0]
    # a map and its own mirror image agree perfectly
    assert flip_cam_disagreement(cam1, cam1.flip(-1)).tolist() == [0.0]


def test_eac_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0]])
    y = torch.tensor([0])
    fmap1 = torch.tensor([[[[1.0, 0.0]]]])  # 1 sample, 1 channel, 1x2
    fmap2 = torch.tensor([[[[1.0, 0.0]]]])  # its flip would be [0, 1]
    weight = torch.tensor([[2.0], [1.0]])
    loss, per_sample = eac_loss(logits, y, fmap1, fmap2, weight, lam=5.0)
    ce = -math.log(math.exp(2) / (math.exp(2) + 1))
    # CAM1: class0 [2, 0], class1 [1, 0]; flip(CAM2): class0 [0, 2], class1 [0, 1]
    # squared differences: 4, 4, 1, 1 -> mean 2.5
    assert per_sample.tolist() == pytest.approx([2.5])
    assert loss.item() == pytest.approx(ce + 5.0 * 2.5)


def test_eac_consistency_term_does_not_train_the_fc_weight():
    weight = torch.tensor([[2.0], [1.0]], requires_grad=True)
    fmap1 = torch.tensor([[[[1.0, 0.0]]]], requires_grad=True)
    fmap2 = torch.tensor([[[[1.0, 0.0]]]])
    logits = torch.zeros(1, 2)  # classification term independent of the weight here
    loss, _ = eac_loss(logits, torch.tensor([0]), fmap1, fmap2, weight, lam=1.0)
    loss.backward()
    assert weight.grad is None  # detached in the CAM term (paper Fig. 2, official code)
    assert fmap1.grad is not None and fmap1.grad.abs().sum() > 0
