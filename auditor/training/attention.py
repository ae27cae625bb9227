"""Flip attention of a trained model, for every method: the EAC paper's argument (a model that
memorises a wrong label attends to different regions of an image and of its mirror image, Sec.
3 and Fig. 1) read from the model at the end of training instead of inside EAC's loss.

On the un-augmented image x and its mirror, in eval mode, with the method's class activation
maps (`Method.cams`, in float32):

    flip_attention[n]       = mean_{k,h,w} (CAM(x)[n,k] - hflip(CAM(hflip x))[n,k])^2
    flip_attention_given[n] = mean_{h,w}   (CAM(x)[n,y_n] - hflip(CAM(hflip x))[n,y_n])^2

with y_n the given label. Higher = the attention of the image and of its mirror disagree more
(more suspect). The first is EAC's consistency term (`methods.cam.flip_cam_disagreement`); the
second looks only at the map of the class the label claims. Both cost two forward passes of
the training set. Meaningful for mirror-symmetric images (faces); measured per dataset.
"""

from __future__ import annotations

import numpy as np
import torch

from auditor.training.augment import Normalizer
from methods.base import Method
from methods.cam import autocast_off, flip_cam_disagreement

ATTENTION_SCORES = ("flip_attention", "flip_attention_given")


@torch.no_grad()
def flip_attention(
    method: Method,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    normalize: Normalizer,
    device: str,
    batch_size: int = 256,
    amp: bool = False,
) -> dict[str, np.ndarray]:
    """{name: [N] float32} for `ATTENTION_SCORES` on uint8 images `pixels` [N, C, H, W] with
    given labels [N]; {} when the method has no CAMs. Leaves the method in eval mode."""
    method.eval()
    out: dict[str, list[torch.Tensor]] = {name: [] for name in ATTENTION_SCORES}
    for start in range(0, len(pixels), batch_size):
        x = normalize(pixels[start : start + batch_size].to(device, non_blocking=True))
        y = labels[start : start + batch_size].to(device)
        maps = []
        for view in (x, x.flip(-1)):
            with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=amp):
                fmap = method.backbone(view.contiguous(memory_format=torch.channels_last))
            with autocast_off(fmap):
                cam = method.cams(fmap.float())
            if cam is None:
                return {}
            maps.append(cam)
        cam, mirrored = maps
        rows = torch.arange(len(y), device=cam.device)
        out["flip_attention"].append(flip_cam_disagreement(cam, mirrored).cpu())
        given = (cam[rows, y] - mirrored[rows, y].flip(-1)).pow(2).mean(dim=(1, 2))
        out["flip_attention_given"].append(given.cpu())
    return {name: torch.cat(values).numpy() for name, values in out.items()}
