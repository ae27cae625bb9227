"""Class activation maps (Zhou et al. 2016) as the EAC paper uses them.

CAM(x)[n, k, h, w] = sum_c W[k, c] * F(x)[n, c, h, w]: the fc weight applied to the last
conv feature map, with no bias, no ReLU and no normalisation (EAC paper, Eq. 1).

The flip-consistency terms of EAC and GSMC are small differences of two large maps, which bf16
rounds away (bf16 keeps 8 significant bits: 1001 is stored as 1000). `float32_cams` and
`flip_cam_disagreement` therefore run in float32 with autocast off, whatever autocast region the
caller is in; gradients still flow to the feature map (through the cast). Without autocast, on
float32 inputs, the casts are no-ops and the results are those of the plain computation.
"""

from __future__ import annotations

import torch


def class_activation_maps(fmap: torch.Tensor, fc_weight: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] x [K, C] -> [N, K, h, w]."""
    return torch.einsum("nchw,kc->nkhw", fmap, fc_weight)


def autocast_off(like: torch.Tensor) -> torch.autocast:
    """A region where autocast is disabled on the device type of `like`."""
    return torch.autocast(device_type=like.device.type, enabled=False)


def float32_cams(fmap: torch.Tensor, fc_weight: torch.Tensor) -> torch.Tensor:
    """`class_activation_maps` in float32 with autocast off, even inside a bf16 autocast region."""
    with autocast_off(fmap):
        return class_activation_maps(fmap.float(), fc_weight.float())


def flip_cam_disagreement(cam: torch.Tensor, cam_of_flipped: torch.Tensor) -> torch.Tensor:
    """Per-sample flip attention inconsistency, EAC's consistency term before the batch mean:

        d_n = mean_{k,h,w} (CAM(x1)[n,k,h,w] - hflip(CAM(x2))[n,k,h,w])^2,  x2 = hflip(x1)

    Higher = the attention of the image and of its mirror image disagree more (more suspect).
    Computed in float32 with autocast off (give it `float32_cams`: bf16 maps have already lost
    the difference); the result is float32.
    """
    with autocast_off(cam):
        return (cam.float() - cam_of_flipped.float().flip(-1)).pow(2).mean(dim=(1, 2, 3))
