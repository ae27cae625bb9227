"""The presets `--preset NAME` applies (over the dataset's registry defaults, under the options
typed on the command line; `auditor.config.resolve`)."""

from __future__ import annotations

from typing import Any

# The papers' training settings (EAC paper, Sec. 4.1; docs/methods.md), for users with a GPU.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "backbone": "resnet18",
        "image_size": 224,
        "lr": 2e-4,
        "weight_decay": 1e-4,
        "lr_gamma": 0.9,
        "epochs": 60,
        "batch_size": 256,
        "eac_lambda": 5.0,
        "scn_lr": 1e-3,  # SCN's official code: Adam at its default rate
    },
}
