"""Has a training memorised its wrong labels? Read from what every run records, per epoch.

With a known truth (injected noise, a noise file), per epoch e, from the training view's
signals recorded against the given label (`correct[e, n]`, `loss[e, n]`):

    memorisation[e] = mean_{n noisy} correct[e, n]   (noisy samples fitted to their wrong label)
    loss_clean[e], loss_noisy[e] = mean loss over clean / noisy samples (EAC paper, Fig. 5)

Without the truth, only what a user has: the fit of the given labels, fit[e] = mean_n
correct[e, n], against the test accuracy test[e]. `verdict` says in one sentence whether a run
looks memorised: its final fit exceeds its final test accuracy by more than GAP and its test
accuracy fell more than DROP below its peak. The fit is read on the augmented training view, in
training mode, so it trails the fit of the un-augmented images (bench/memorisation.py reads
both); a gap above GAP is therefore conservative. No rule here reads the truth.
"""

from __future__ import annotations

import numpy as np

GAP = 0.10  # fit of the given labels above test accuracy, at the end
DROP = 0.02  # test accuracy below its peak, at the end


def curves(
    correct: np.ndarray,
    loss: np.ndarray,
    test_accuracy: list[float],
    is_noisy: np.ndarray | None,
    split: str | None = "test",
    held_out: np.ndarray | None = None,
) -> dict:
    """Per-epoch curves of one method ([epochs, N] signals): `fit` and `test_accuracy` (the
    accuracy on `split`: "test", or "validation", a held-out share of the given labels) always;
    `memorisation`, `loss_clean`, `loss_noisy` when the truth `is_noisy` [N] is known. The
    samples of a validation split (`held_out`, indices) were never trained on: the curves read
    the trained samples only."""
    if held_out is not None:
        kept = np.setdiff1d(np.arange(correct.shape[1]), held_out)
        correct, loss = correct[:, kept], loss[:, kept]
        is_noisy = None if is_noisy is None else is_noisy[kept]
    out: dict = {"fit": correct.mean(axis=1).tolist(), "test_accuracy": list(test_accuracy)}
    if is_noisy is not None and 0 < is_noisy.sum() < len(is_noisy):
        out["memorisation"] = correct[:, is_noisy].mean(axis=1).tolist()
        out["loss_clean"] = loss[:, ~is_noisy].mean(axis=1).tolist()
        out["loss_noisy"] = loss[:, is_noisy].mean(axis=1).tolist()
    out["verdict"] = verdict(out["fit"], out["test_accuracy"], split)
    return out


def verdict(fit: list[float], test_accuracy: list[float], split: str | None = "test") -> str:
    """One sentence, from the fit of the given labels and the accuracy per epoch on `split`
    ("test"; "validation": held-out samples scored against their given labels, so both sides
    of the gap carry the same noise)."""
    if not test_accuracy:
        return (
            "No test or validation split: whether the model memorised its labels cannot be read "
            f"from accuracy (it fits {fit[-1]:.0%} of the given labels at the end)."
        )
    test = np.asarray(test_accuracy)
    peak, final, gap = int(test.argmax()), float(test[-1]), fit[-1] - float(test[-1])
    fell = float(test[peak]) - final > DROP
    what = "test accuracy" if split == "test" else f"{split} accuracy (given labels)"
    numbers = (
        f"it fits {fit[-1]:.0%} of the given training labels against {final:.0%} {what} "
        f"(peak {test[peak]:.0%} at epoch {peak + 1})"
    )
    if gap > GAP and fell:
        return (
            f"Looks memorised: {numbers}. The final model has fitted labels it does not "
            "generalise; which epochs the detectors read instead is in the decisions "
            "(metrics.json ensemble.early_learning)."
        )
    if gap > GAP:
        return f"Fits the given labels beyond its {what}, but it held: {numbers}."
    return f"No sign of memorisation: {numbers}."
