"""Class activation maps (Zhou et al. 2016) as the EAC paper uses them.

CAM(x)[n, k, h, w] = sum_c W[k, c] * F(x)[n, c, h, w]: the fc weight applied to the last
conv feature map, with no bias, no ReLU and no normalisation (EAC paper, Eq. 1).
"""

from __future__ import annotations

import torch


def class_activation_maps(fmap: torch.Tensor, fc_weight: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] x [K, C] -> [N, K, h, w]."""
    return torch.einsum("nchw,kc->nkhw", fmap, fc_weight)


def flip_cam_disagreement(cam: torch.Tensor, cam_of_flipped: torch.Tensor) -> torch.Tensor:
    """Per-sample flip attention inconsistency, EAC's consistency term before the batch mean:

        d_n = mean_{k,h,w} (CAM(x1)[n,k,h,w] - hflip(CAM(x2))[n,k,h,w])^2,  x2 = hflip(x1)

    Higher = the attention of the image and of its mirror image disagree more (more suspect).
    """
    return (cam - cam_of_flipped.flip(-1)).pow(2).mean(dim=(1, 2, 3))
