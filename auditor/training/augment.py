"""Batched augmentation on the training device: no per-sample Python, the same code on CPU and
CUDA. Random erasing follows torchvision's RandomErasing as the four FER repositories use it
after normalisation: p = 0.5, scale = (0.02, 0.25), ratio = (0.3, 3.3), value = 0."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from auditor.datasets.pixel_map import Pixels, chunks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalizer:
    """uint8 [N, C, H, W] -> float (x / 255 - mean) / std, per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    # (mean, std) as [1, C, 1, 1] tensors per device, made once: a small host-to-device copy
    # in every step would make the host wait for the device
    _on_device: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def fit(cls, pixels: Pixels) -> Normalizer:
        """Channel mean and std (unbiased) of uint8 images [N, C, H, W] (the training split),
        in [0, 1] units, from float64 sums over blocks of rows: memory bounded for any N."""
        total = torch.zeros(pixels.shape[1], dtype=torch.float64)
        squares = torch.zeros_like(total)
        rows = max(1, 2**23 // pixels.shape[1:].numel())  # 64 MB of float64 at a time
        for block in chunks(pixels, rows):
            x = block.double().div_(255)
            total += x.sum(dim=(0, 2, 3))
            squares += x.square_().sum(dim=(0, 2, 3))
        count = len(pixels) * pixels.shape[2] * pixels.shape[3]
        mean = total / count
        std = ((squares - count * mean.square()) / max(count - 1, 1)).clamp_min(0).sqrt()
        return cls(tuple(mean.tolist()), tuple(std.clamp_min(1e-3).tolist()))

    @classmethod
    def imagenet(cls, channels: int) -> Normalizer:
        """ImageNet's channel mean and std, which pre-trained backbones (`--weights`) expect.
        For 1-channel images, the mean of ImageNet's three values (for the mean and for the
        std): resnet-small's first conv is then built for one channel, and the torchvision
        backbones repeat the one normalised channel to three."""
        if channels == 3:
            return cls(IMAGENET_MEAN, IMAGENET_STD)
        if channels == 1:
            return cls((sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,))
        raise ValueError(f"ImageNet statistics are for 1 or 3 channels, not {channels}")

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) as [1, C, 1, 1] tensors on `device`."""
        if device not in self._on_device:
            self._on_device[device] = tuple(
                torch.tensor(v, device=device).view(1, -1, 1, 1) for v in (self.mean, self.std)
            )
        return self._on_device[device]

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        mean, std = self.tensors(pixels.device)
        return (pixels.float().div(255) - mean) / std


class Augmenter:
    """Random horizontal flips, random erasing and pixel noise for a whole batch, drawn from one
    seeded generator on the batch's device. `normalizer` (the one the batch was normalised
    with) is needed by `pixel_noise` only. `mirror=False` (images whose mirror image may change
    their class: digits, text) makes `random_hflip` and `flip_or_noise` never mirror; they
    still make the same random draws, so the rest of the random stream (erasing, noise) is the
    one `mirror=True` gives."""

    def __init__(
        self,
        generator: torch.Generator,
        *,
        normalizer: Normalizer | None = None,
        erase_p: float = 0.5,
        erase_scale: tuple[float, float] = (0.02, 0.25),
        erase_ratio: tuple[float, float] = (0.3, 3.3),
        erase_value: float = 0.0,
        mirror: bool = True,
    ) -> None:
        self.g = generator
        self.mirror = mirror
        self.normalizer = normalizer
        self.erase_p = erase_p
        self.erase_scale = erase_scale
        self.erase_ratio = erase_ratio
        self.erase_value = erase_value

    def _rand(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.rand(n, generator=self.g, device=self.g.device).to(device)

    def permutation(self, n: int, device: torch.device) -> torch.Tensor:
        """A random permutation of range(n) (RUL's pairing of samples within a batch)."""
        return torch.randperm(n, generator=self.g, device=self.g.device).to(device)

    def random_hflip(self, x: torch.Tensor) -> torch.Tensor:
        """Mirror each image with probability 1/2; `x` unchanged when `mirror` is False (the
        draw is made all the same)."""
        flip = self._rand(x.shape[0], x.device) < 0.5
        if not self.mirror:
            return x
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)

    def erase_masks(self, n: int, h: int, w: int, device: torch.device) -> torch.Tensor:
        """Boolean [n, 1, h, w]: one rectangle per image (with probability `erase_p`) of area
        U(scale) * h * w and log-uniform aspect ratio, placed uniformly inside the image.
        torchvision retries up to 10 times when a rectangle does not fit; here a rectangle is
        clipped to fit, which for the default scale and ratio never happens."""
        area = (
            h
            * w
            * (
                self.erase_scale[0]
                + (self.erase_scale[1] - self.erase_scale[0]) * self._rand(n, device)
            )
        )
        log_lo, log_hi = math.log(self.erase_ratio[0]), math.log(self.erase_ratio[1])
        ratio = torch.exp(log_lo + (log_hi - log_lo) * self._rand(n, device))
        eh = torch.sqrt(area * ratio).round().clamp(1, h - 1)
        ew = torch.sqrt(area / ratio).round().clamp(1, w - 1)
        top = (self._rand(n, device) * (h - eh + 1)).floor()
        left = (self._rand(n, device) * (w - ew + 1)).floor()
        rows = torch.arange(h, device=device).view(1, h)
        cols = torch.arange(w, device=device).view(1, w)
        in_rows = (rows >= top.view(-1, 1)) & (rows < (top + eh).view(-1, 1))
        in_cols = (cols >= left.view(-1, 1)) & (cols < (left + ew).view(-1, 1))
        apply = (self._rand(n, device) < self.erase_p).view(-1, 1, 1)
        return ((in_rows.unsqueeze(2) & in_cols.unsqueeze(1)) & apply).unsqueeze(1)

    def pixel_noise(self, x: torch.Tensor, std: float, p: float) -> torch.Tensor:
        """With probability `p` per image, Gaussian noise of standard deviation `std` on the
        0-255 pixel scale, the result clipped to [0, 255] and truncated to whole values (the
        official EAC dataset code's uint8 cast), on normalised images `x`."""
        if self.normalizer is None:
            raise ValueError("pixel_noise needs the Augmenter's normalizer")
        mean, sd = self.normalizer.tensors(x.device)
        pixels = (x * sd + mean) * 255
        noise = torch.randn(x.shape, generator=self.g, device=self.g.device).to(x.device) * std
        noisy = (pixels + noise).clamp(0, 255).floor()
        apply = (self._rand(x.shape[0], x.device) < p).view(-1, 1, 1, 1)
        return torch.where(apply, (noisy / 255 - mean) / sd, x)

    def flip_or_noise(self, x: torch.Tensor, std: float) -> torch.Tensor:
        """SCN's and RUL's basic augmentation (their official dataset code): with probability
        1/2 an image is changed, by a mirror or by `pixel_noise` of standard deviation `std`,
        chosen with equal probability; so 1/4 of images are mirrored, 1/4 noised, 1/2 kept.
        When `mirror` is False the mirror branch keeps the image: 1/4 noised, 3/4 kept."""
        u = self._rand(x.shape[0], x.device).view(-1, 1, 1, 1)
        noisy = self.pixel_noise(x, std=std, p=1.0)
        mirrored = x.flip(-1) if self.mirror else x
        return torch.where(u < 0.25, mirrored, torch.where(u < 0.5, noisy, x))

    def random_erase(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return x.masked_fill(self.erase_masks(n, h, w, x.device), self.erase_value)
