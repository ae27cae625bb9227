"""Which detectors vote in the ensemble, per trusted method: chosen by the structure of the noise
the run estimates (`confusion_structure`), by whether the method memorised, and for the frozen
reading (`auditor.training.frozen`), never by the truth. `auditor.scoring.score_all` applies
them."""

from __future__ import annotations

import numpy as np

# The ensemble's members, per trusted method, chosen by the structure of the noise the run
# estimates (`confusion_structure`), never by the truth. Measured in bench/detection.py (README,
# "Detection benchmark"): regime {10 epochs; 60 epochs, where CE memorises; fine-tuning a
# pre-trained backbone} x noise {symmetric, pair, instance, human-fer, two-way swaps} on
# Fashion-MNIST and synthetic faces.
# - Noise spread over many class pairs (symmetric, instance-dependent): AUM (training dynamics,
#   robust to memorisation), the self-confidence of the least memorised probabilities (the
#   normalized margin for a method read early and for the frozen reading: `memorised_members`,
#   `frozen_members`) and the kNN vote on the embeddings, three kinds of evidence that err
#   differently. Adding the normalized margin as a fourth was measured (3 seeds each, mean AP
#   with / without it):
#   pre-trained faces 0.936 / 0.930 and 0.942 / 0.934, Fashion-MNIST symmetric 0.933 / 0.931,
#   0.958 / 0.954, 0.960 / 0.957, but the demo's run 0.9830 / 0.9836 AUROC, 0.966 / 0.967 AP:
#   too small a gain for a member, and the demo must not get worse.
# - Confusions concentrated in a few class pairs, one way (a flip y -> y + 1) or both ways (A <->
#   B swaps, as annotators confuse sadness and neutral): a model fits such a consistent
#   confusion as if it were signal, so the in-sample training dynamics and embeddings absorb it
#   (AUM AP 0.77-0.80, kNN 0.57-0.58 on the demo under pair noise) while the probabilities'
#   disagreement with the label keeps it (normalized margin 0.83-0.84, mistakenness 0.85).
#   One member reads it: `confident_disagreement` (mistakenness where the model disagrees, the
#   margin where it agrees). It replaced the mean rank of the margin and mistakenness (mean
#   AP): two-way swaps on the demo 0.559 -> 0.589 (60 epochs, 3 seeds), 0.620 -> 0.663 and
#   0.624 -> 0.666 (pre-trained, 10 / 30 epochs, 3 seeds), 0.624 -> 0.656 (10 epochs, 3
#   seeds); pair noise 0.825 -> 0.834 (demo, 60 epochs, 3 seeds), 0.603 -> 0.607 (faces, 60
#   epochs, 3 seeds); faces read as concentrated under human-fer and symmetric noise
#   0.714 -> 0.710 and 0.783 -> 0.781 (3 seeds; its docstring says why it loses there).
ENSEMBLE_MEMBERS = ("aum", "self_confidence", "knn")
CONCENTRATED_MEMBERS = ("confident_disagreement",)
# The share of the estimated confusions that lie in the K most confused (given, predicted) class
# pairs (`confusion_structure`) at and above which the noise is read as concentrated. Measured
# on the least memorised probabilities (bench/detection.py, one seed): 0.27-0.34 under
# symmetric noise (Fashion-MNIST, 10 classes), 0.94-0.99 under two-way swaps in 3 pairs of
# classes; on synthetic faces (7 classes) after 60 epochs 0.64 under pair noise and 0.65 under
# human-fer noise, close to the threshold.
CONCENTRATION_THRESHOLD = 0.6
# ... read only when confident learning counts confusions for at least this share of the samples:
# a run whose probabilities fitted the given labels counts few (8 of 1,000 on synthetic faces
# after 60 epochs) and says nothing about the noise's structure.
MIN_CONFUSED_SHARE = 0.05


def memorised_members(members: tuple[str, ...]) -> tuple[str, ...]:
    """The members of a method that memorised: its per-epoch training dynamics (`aum`) join,
    its kNN vote on the final model's embeddings leaves, and its normalized margin stands for
    its self-confidence. Measured (bench/detection.py, CE on synthetic faces after 60 epochs):
    with the margin members under pair noise AP 0.659 against 0.625 without AUM, under
    human-fer 0.715 against 0.702; with the default members under human-fer 0.732 without kNN
    against 0.705 with it.

    The margin, because such a method is read on its probabilities averaged over the early
    epochs (`auditor.early_learning`): a model still learning, averaged over the classes each
    sample moved between, spreads its mass (mean entropy 1.3-1.7 nats, mean top probability
    0.33-0.55, against 0.5-1.4 and 0.5-0.8 for the best-epoch model on synthetic faces). The
    given label's probability alone then calls every uncertain sample suspect; the margin asks
    whether one other class beats the label. Measured (3 seeds, CE's early reading, AP
    self-confidence / margin): faces pair 0.488-0.568 / 0.593-0.636, human-fer 0.694-0.737 /
    0.706-0.736, symmetric 0.724-0.824 / 0.733-0.810, instance 0.778-0.815 / 0.763-0.830;
    Fashion-MNIST 60 epochs symmetric 0.873-0.882 / 0.879-0.892, instance 0.850-0.889 /
    0.854-0.891 (on the best-epoch model the self-confidence ranks first on 14 of those 15
    readings outside pair noise). The suspicion (3 seeds, mean AP): faces pair 0.607 -> 0.647,
    symmetric 0.781 -> 0.786, instance 0.807 -> 0.805, human-fer 0.706 -> 0.706; cells where no
    trusted method memorised are unchanged (the demo's among them)."""
    kept = [d for d in margin_for_self_confidence(members) if d != "knn"]
    return tuple(kept if "aum" in kept else ["aum", *kept])


def margin_for_self_confidence(members: tuple[str, ...]) -> tuple[str, ...]:
    """`members` with the normalized margin in place of the self-confidence."""
    return tuple("normalized_margin" if d == "self_confidence" else d for d in members)


def frozen_members(members: tuple[str, ...]) -> tuple[str, ...]:
    """The members of the frozen reading (`auditor.training.frozen`, with --weights): its
    normalized margin stands for its self-confidence. The fine-tuned methods vote with their
    self-confidence already; the frozen margin errs more differently from it (Spearman
    correlation with the trusted fine-tuned self-confidence 0.825-0.873 against 0.839-0.892 for
    the frozen self-confidence, 3 seeds of demo-pretrained-short-symmetric and
    synth-faces-pretrained-long-human-fer). Measured (bench/detection.py, 3 seeds, mean AP,
    before -> after): demo pre-trained symmetric 0.957 -> 0.959 and 0.954 -> 0.957, faces
    pre-trained human-fer 0.930 -> 0.935 and 0.934 -> 0.939, higher on all 12 seeds; the swap
    cells read `confident_disagreement` and are unchanged."""
    return margin_for_self_confidence(members)


def confusion_structure(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(how concentrated the estimated confusions are, the share of samples confused): with C
    the confident joint (Northcutt et al., 2021; C[i, j] = samples given label i and confidently
    predicted j) off its diagonal, the share of sum C held by its K largest cells (K classes),
    in [0, 1] (about 1 / (K - 1) when the confusions spread evenly over every pair of classes;
    1 when they lie in K pairs or fewer: a flip y -> y + 1, swaps inside a few pairs, whichever
    way they go; 0 when nothing is confused), and sum C / N."""
    from cleanlab.count import compute_confident_joint

    joint = compute_confident_joint(labels, probs).astype(np.float64)
    np.fill_diagonal(joint, 0.0)
    total = joint.sum()
    k = len(joint)
    top = np.sort(joint.ravel())[::-1][:k].sum()
    return (float(top / total) if total else 0.0), float(total / len(labels))
