"""Flip attention of a trained model, for every method: the EAC paper's argument (a model that
memorises a wrong label attends to different regions of an image and of its mirror image, Sec.
3 and Fig. 1) read from the model at the end of training instead of inside EAC's loss.

On the un-augmented image x and its mirror, in eval mode, with the method's class activation
maps (`Method.cams`, in float32), for the given label y's class map:

    A = CAM(x)[y],  B = hflip(CAM(hflip x))[y]    (both in the image's orientation)
    flip_attention = sum_{h,w} (A - B)^2 / sum_{h,w} (A^2 + B^2)    in [0, 2]

0 when the map of the image and of its mirror agree, higher = they disagree more (more
suspect). The ratio makes it scale-free. Measured (README, "Memorisation"): EAC's own term,
mean_{k,h,w} (CAM(x) - hflip(CAM(hflip x)))^2 over all classes, read from the final model, is at
chance on Fashion-MNIST and on synth-faces (AUROC 0.47-0.55), and so is its scale-free version
over all classes (0.53-0.54); the unnormalised given-class term ranks noisy samples *last*
(AUROC 0.22-0.49), because its size follows the magnitude of the given class's map, i.e. how
much the model believes the label. Only the scale-free given-class ratio carries signal, so it
is the one recorded. Costs two forward passes of the training set. Meaningful for
mirror-symmetric images (faces, most objects); for others a flip is no symmetry.
"""

from __future__ import annotations

import numpy as np
import torch

from auditor.datasets.pixel_map import Pixels
from auditor.training.augment import Normalizer
from methods.base import Method
from methods.cam import autocast_off


@torch.no_grad()
def flip_attention(
    method: Method,
    pixels: Pixels,
    labels: torch.Tensor,
    normalize: Normalizer,
    device: str,
    batch_size: int = 256,
    amp: bool = False,
) -> np.ndarray | None:
    """flip_attention [N] float32 on uint8 images `pixels` [N, C, H, W] with given labels [N];
    None when the method has no CAMs. Leaves the method in eval mode."""
    method.eval()
    out: list[torch.Tensor] = []
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
                return None
            maps.append(cam[torch.arange(len(y), device=cam.device), y])
        out.append(flip_ratio(maps[0], maps[1].flip(-1)).cpu())
    return torch.cat(out).numpy()


def flip_ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum_{h,w} (a - b)^2 / sum_{h,w} (a^2 + b^2) per sample of maps [N, h, w] (0 where both
    maps are 0)."""
    a, b = a.float(), b.float()
    energy = (a.pow(2) + b.pow(2)).sum(dim=(1, 2))
    return torch.where(energy > 0, (a - b).pow(2).sum(dim=(1, 2)) / energy.clamp_min(1e-30), 0.0)
