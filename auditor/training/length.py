"""How long a run trains when the user does not say (`--epochs` not set).

A fixed 10 epochs stops a small dataset's model while it is still learning (a 3,000-image folder
at batch 256 gets 110 optimisation steps) and wastes time on a large one. Without `--epochs`, a
training with held-out accuracy (a test split or the validation split) runs until that accuracy
stops rising: it stops after epoch e >= MIN_EPOCHS once both

    mean(acc[e - W + 1 .. e]) < mean(acc[e - 2W + 1 .. e - W]) + MIN_GAIN   (W = WINDOW)
    max(acc[e - W + 1 .. e]) <= max(acc[1 .. e - W])

hold (the last W epochs gained less than MIN_GAIN on average over the W before, and none of
them was a new best), and at MAX_EPOCHS (the papers' 60) at the latest. On a validation split of
a few hundred samples one epoch's accuracy moves by a point or two by chance, and each half
alone stopped a training that went on learning (measured, ce on a 3,000-image folder with 30%
instance noise: it peaked at 0.546 at epoch 6, dipped to 0.525 at 9, reached 0.600 by 26; "no
new best by 0.01 in 5 epochs" stopped it at 10, the window means alone at 13; both stop it at
25). A training without held-out accuracy trains MIN_EPOCHS. The wrong labels fitted in the
extra epochs are read around: the early-learning reading (`auditor.early_learning`) reads a run
that memorises from before its onset.
"""

from __future__ import annotations

MIN_EPOCHS = 10  # today's fixed default: a run never trains less than before
MAX_EPOCHS = 60  # the papers' training length (EAC, SCN, RUL: 60 epochs)
WINDOW = 5  # epochs
MIN_GAIN = 0.01  # accuracy (share of held-out samples)


def plateaued(accuracy: list[float]) -> bool:
    """True when a training whose held-out accuracy per epoch so far is `accuracy` should stop
    before its next epoch (the rule in the module docstring); False before MIN_EPOCHS."""
    if len(accuracy) < max(MIN_EPOCHS, 2 * WINDOW):
        return False
    last, before = accuracy[-WINDOW:], accuracy[-2 * WINDOW : -WINDOW]
    flat = sum(last) / WINDOW < sum(before) / WINDOW + MIN_GAIN
    return flat and max(last) <= max(accuracy[:-WINDOW])


def length_reason(accuracy: list[float], epochs: int, split: str | None) -> str:
    """One sentence on why a training without `--epochs` trained `epochs` epochs, `accuracy`
    its held-out accuracy per epoch on `split` ("test", "validation" or None: none)."""
    if split is None:
        return (
            f"{epochs} epochs: no test or validation split to tell when it stops learning "
            "(--epochs sets it)"
        )
    best = max(accuracy)
    at = accuracy.index(best) + 1
    if epochs >= MAX_EPOCHS:
        return (
            f"{epochs} epochs, the most without --epochs: its {split} accuracy had not stopped "
            f"rising (best {best:.3f} at epoch {at})"
        )
    return (
        f"{epochs} epochs: the mean {split} accuracy of its last {WINDOW} rose less than "
        f"{MIN_GAIN:g} over the {WINDOW} before, and none was a new best (best {best:.3f} at "
        f"epoch {at}; without --epochs it trains {MIN_EPOCHS} to {MAX_EPOCHS})"
    )
