"""The figures of the report and of `audit compare`, as PNG bytes (matplotlib, Agg backend)."""

from __future__ import annotations

import io
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def memorisation_curves(curves: dict[str, dict]) -> bytes:
    """Per method and epoch (`auditor.memorisation.curves`): the fit of the given training labels
    (solid) and the accuracy on the test or validation split (dashed); with the truth also the
    share of noisy samples fitted to their wrong label, and the mean loss of clean (dashed) and
    noisy (solid) samples."""
    truth = all("memorisation" in c for c in curves.values())
    fig, axes = plt.subplots(1, 3 if truth else 1, figsize=(15 if truth else 6, 3.6), squeeze=False)
    axes = axes[0]
    for i, (method, c) in enumerate(curves.items()):
        colour = f"C{i}"
        epochs = np.arange(1, len(c["fit"]) + 1)
        axes[0].plot(epochs, c["fit"], color=colour, label=f"{method}: fit of given labels")
        if c["test_accuracy"]:
            axes[0].plot(
                epochs, c["test_accuracy"], "--", color=colour, label=f"{method}: held out"
            )
        if truth:
            axes[1].plot(epochs, c["memorisation"], color=colour, label=method)
            axes[2].plot(epochs, c["loss_noisy"], color=colour, label=f"{method}: noisy")
            axes[2].plot(epochs, c["loss_clean"], "--", color=colour, label=f"{method}: clean")
    axes[0].set(
        xlabel="epoch", ylabel="accuracy", title="Fit of the given labels vs held-out accuracy"
    )
    if truth:
        axes[1].set(
            xlabel="epoch",
            ylabel="share",
            ylim=(0, 1),
            title="Noisy samples fitted to their wrong label",
        )
        axes[2].set(xlabel="epoch", ylabel="mean loss", title="Loss of clean and noisy samples")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return png(fig)


def accuracy_curves(accuracy: dict, split: str = "test") -> bytes:
    """Accuracy on `split` (test, or the held-out validation split) per epoch, one line per
    method."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for method, acc in accuracy.items():
        values = acc["per_epoch"]
        ax.plot(range(1, len(values) + 1), values, marker="o", ms=3, label=method)
    ax.set(
        xlabel="epoch", ylabel=f"{split} accuracy", title=f"{split.capitalize()} accuracy per epoch"
    )
    ax.grid(alpha=0.3)
    ax.legend()
    return png(fig)


def loss_histograms(losses: dict[str, np.ndarray], is_noisy: np.ndarray) -> bytes:
    """Per method, the final-epoch training loss of clean vs noisy samples (EAC paper, Fig. 5)."""
    fig, axes = plt.subplots(1, len(losses), figsize=(4 * len(losses), 3.2), squeeze=False)
    for ax, (method, loss) in zip(axes[0], losses.items(), strict=True):
        bins = np.linspace(0, np.percentile(loss, 99.5), 40)
        ax.hist(loss[~is_noisy], bins=bins, alpha=0.6, label="clean", color="tab:blue")
        ax.hist(loss[is_noisy], bins=bins, alpha=0.6, label="noisy", color="tab:red")
        ax.set(title=f"{method}: last-epoch loss", xlabel="loss", ylabel="samples")
        ax.legend()
    return png(fig)


def pr_curves(
    ax, scores: dict[str, np.ndarray], is_noisy: np.ndarray, aps: dict[str, float], title: str
) -> None:
    """Precision-recall curves of `scores` on one axis (the ensemble drawn thicker)."""
    for name, score in scores.items():
        precision, recall, _ = precision_recall_curve(is_noisy, score)
        ax.plot(
            recall,
            precision,
            lw=2.2 if name == "suspicion" else 1.2,
            label=f"{name} (AP {aps[name]:.3f})",
        )
    ax.axhline(is_noisy.mean(), color="grey", ls=":", lw=1, label=f"chance ({is_noisy.mean():.3f})")
    ax.set(title=title, xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="lower left")


def pr_figure(
    panels: list[tuple[str, dict[str, np.ndarray], np.ndarray, dict[str, float]]],
) -> bytes:
    """One precision-recall panel per (title, scores, is_noisy, APs)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (title, scores, noisy, aps) in zip(axes[0], panels, strict=True):
        pr_curves(ax, scores, noisy, aps, title)
    return png(fig)


def embedding_map(
    coords: np.ndarray,
    labels: np.ndarray,
    flagged: np.ndarray,
    suspicion: np.ndarray,
    class_names: list[str],
) -> bytes:
    """2-D map of the samples coloured by given label (EAC paper, Fig. 3). The flagged samples,
    often a third of a noisy dataset, are black dots shaded by suspicion and drawn most suspect
    last, so the clusters' colours still read beneath them: with r in [0, 1] a flagged sample's
    suspicion scaled over the flagged samples' range, opacity = 0.3 + 0.7 r and area = 1 + 5 r
    (points^2)."""
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    colours = np.array([cmap(k % cmap.N) for k in range(len(class_names))])
    calm = ~flagged
    ax.scatter(coords[calm, 0], coords[calm, 1], s=4, c=colours[labels[calm]], alpha=0.7, lw=0)
    order = np.flatnonzero(flagged)[np.argsort(suspicion[flagged], kind="stable")]
    if len(order):
        s = suspicion[order]
        r = (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else np.ones_like(s)
        black = np.zeros((len(r), 4))
        black[:, 3] = 0.3 + 0.7 * r
        ax.scatter(coords[order, 0], coords[order, 1], s=1 + 5 * r, c=black, lw=0)
    handles = [
        plt.Line2D([], [], ls="", marker="o", color=colours[k], label=name)
        for k, name in enumerate(class_names)
    ]
    handles.append(
        plt.Line2D(
            [],
            [],
            ls="",
            marker="o",
            color="black",
            label=f"flagged ({int(flagged.sum())}): darker = more suspect",
        )
    )
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set(title="Embedding map (UMAP), coloured by given label", xticks=[], yticks=[])
    return png(fig)


def confusion(given: np.ndarray, suggested: np.ndarray, class_names: list[str]) -> bytes:
    """Counts of (given label, suggested label) among the flagged samples."""
    k = len(class_names)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (given, suggested), 1)
    fig, ax = plt.subplots(figsize=(0.55 * k + 2.5, 0.55 * k + 2))
    ax.imshow(matrix, cmap="Blues")
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                ax.text(j, i, matrix[i, j], ha="center", va="center", fontsize=7)
    ax.set(
        xticks=range(k),
        yticks=range(k),
        xlabel="suggested",
        ylabel="given",
        title="Flagged: given vs suggested",
    )
    ax.set_xticklabels(class_names, rotation=60, ha="right", fontsize=7)
    ax.set_yticklabels(class_names, fontsize=7)
    return png(fig)


def cam_gallery(
    images: np.ndarray, cams: np.ndarray, flipped_cams: np.ndarray, captions: list[str]
) -> bytes:
    """Rows of (image, its CAM, the CAM of its mirror image) for the top suspects (EAC Fig. 4).
    images uint8 [n, C, H, W]; cams [n, h, w] of the suggested class; `flipped_cams` are the
    mirror image's, mirrored back (`auditor.training.gallery`), so both are drawn on the image.
    Each row is a sub-figure whose caption spans its width, above the three panels' titles."""
    n = len(images)
    fig = plt.figure(figsize=(6, 2.3 * n), layout="constrained")
    rows = fig.subfigures(n, 1, squeeze=False)[:, 0]
    drawn = zip(rows, images, cams, flipped_cams, captions, strict=True)
    for row, img, cam, fcam, caption in drawn:
        rgb = img.transpose(1, 2, 0)
        rgb = rgb[..., 0] if rgb.shape[2] == 1 else rgb
        h, w = rgb.shape[:2]
        row.suptitle(textwrap.fill(caption, 80), fontsize=8, fontweight="bold")
        panels = ((None, "image"), (cam, "CAM"), (fcam, "CAM of mirror, mirrored back"))
        for ax, (heat, title) in zip(row.subplots(1, 3), panels, strict=True):
            ax.imshow(rgb, cmap="gray" if rgb.ndim == 2 else None)
            if heat is not None:
                ax.imshow(
                    heat,
                    cmap="jet",
                    alpha=0.45,
                    extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                    interpolation="bilinear",
                )
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    return png(fig)
