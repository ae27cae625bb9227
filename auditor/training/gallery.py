"""The report's gallery, drawn once from a trained model: for a few samples, the class
activation maps of one class on the image and on its mirror image (EAC paper, Fig. 4)."""

from __future__ import annotations

import numpy as np
import torch

from auditor.datasets.pixel_map import Pixels
from auditor.evidence import Gallery
from auditor.training.augment import Normalizer
from methods.base import Method


@torch.no_grad()
def draw_gallery(
    method: Method,
    pixels: Pixels,
    rows: np.ndarray,
    classes: np.ndarray,
    normalize: Normalizer,
    device: str,
) -> Gallery | None:
    """CAMs of class `classes[i]` for image `pixels[rows[i]]` (uint8) and for its mirror image,
    mirrored back so both read in the image's orientation; None when the method has no CAMs."""
    method.eval()
    images = pixels[torch.from_numpy(np.asarray(rows, dtype=np.int64))]
    x = normalize(images.to(device))
    pick = torch.as_tensor(classes, device=device)
    maps = []
    for view in (x, x.flip(-1)):
        cam = method.cams(method.backbone(view))
        if cam is None:
            return None
        maps.append(cam[torch.arange(len(pick)), pick].float().cpu())
    return Gallery(
        np.asarray(rows), images.numpy(), maps[0].numpy(), maps[1].flip(-1).numpy(), method.name
    )
