"""Backbones: a feature extractor whose last conv map feeds global average pooling and one fc.

Every backbone returns the last convolutional feature map F [N, C, h, w]: the classifier is
fc(GAP(F)), and class activation maps are CAM = W . F (`methods.cam`).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn


class BasicBlock(nn.Module):
    """The ResNet basic block (He et al. 2016): two 3x3 convs with a shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A narrow ResNet for small images on a CPU: 3x3 stem, three stages of basic blocks with
    strides 1, 2, 2 (a 28 px input gives a 7x7 map; 64 px gives 16x16)."""

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = widths[-1]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(cin, w, stride=1 if i == 0 else 2))
            cin = w
        self.stages = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class TorchvisionResNet(nn.Module):
    """torchvision's ResNet up to `layer4`, its modules under torchvision's own names (so a
    torchvision or MS-Celeb state dict maps one to one); the fc is the method's own head.
    Single-channel inputs are repeated to three channels."""

    def __init__(self, arch: str = "resnet18") -> None:
        super().__init__()
        net = getattr(torchvision.models, arch)(weights=None)
        self.in_channels = 3
        self.out_channels = net.fc.in_features
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(net, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class TorchvisionMobileNetV2(nn.Module):
    """torchvision's MobileNetV2 `features` (last conv map, 1280 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torchvision.models.mobilenet_v2(weights=None).features
        self.in_channels = 3
        self.out_channels = 1280

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.features(x)


BACKBONES = ("resnet-small", "resnet18", "resnet50", "mobilenet_v2")
# torchvision's ImageNet weights for `--weights imagenet` (downloaded; needs a network)
IMAGENET_WEIGHTS = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "mobilenet_v2": "MobileNet_V2_Weights.IMAGENET1K_V1",
}


def build_backbone(name: str, in_channels: int) -> nn.Module:
    if name == "resnet-small":
        return SmallResNet(in_channels)
    if name in ("resnet18", "resnet50"):
        return TorchvisionResNet(name)
    if name == "mobilenet_v2":
        return TorchvisionMobileNetV2()
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
