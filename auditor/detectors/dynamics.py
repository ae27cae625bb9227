"""Detectors that read the per-epoch training signals ([epochs, N] arrays, recorded on the
augmented view that received the classification loss).

Signals accumulated over epochs keep their power when the final in-sample loss has lost it to
memorisation (the EAC paper's Fig. 5)."""

from __future__ import annotations

import numpy as np

from auditor.detectors.registry import detector


@detector("loss_mean", reads=("signal:loss",))
def mean_loss(loss: np.ndarray) -> np.ndarray:
    """score = mean over epochs of -log p(y|x). Higher = more suspect."""
    return loss.mean(axis=0)


@detector("aum", reads=("signal:margin",))
def area_under_margin(margin: np.ndarray) -> np.ndarray:
    """AUM (Pleiss et al., NeurIPS 2020): mean over epochs of z_y - max_{k != y} z_k.
    Returned negated, so higher = more suspect (mislabelled samples have low or negative AUM).
    Without threshold samples: ranks, does not decide."""
    return -margin.mean(axis=0)


@detector("flip_cam", reads=("signal:flip_cam",))
def mean_flip_cam(flip_cam: np.ndarray) -> np.ndarray:
    """EAC's per-sample flip attention disagreement mean_{k,h,w}(CAM(x) - hflip(CAM(hflip x)))^2,
    averaged over epochs. Higher = the model attends to different parts of the face and of its
    mirror image, which the EAC paper argues happens when it memorises a wrong label. Ours to
    evaluate: no published work uses it as a detector."""
    return flip_cam.mean(axis=0)


@detector("forgetting", reads=("signal:correct",))
def forgetting_events(correct: np.ndarray) -> np.ndarray:
    """Toneva et al. (ICLR 2019): the number of epochs e with correct[e - 1] = 1 and
    correct[e] = 0 (learned, then forgotten). A sample never classified correctly counts as
    `epochs` forgetting events, more than any learned sample can have (<= epochs / 2), as the
    paper ranks unlearned samples first. Higher = more suspect."""
    correct = np.asarray(correct) > 0.5
    forgotten = (correct[:-1] & ~correct[1:]).sum(axis=0).astype(np.float64)
    return np.where(correct.any(axis=0), forgotten, float(correct.shape[0]))


@detector("cartography_confidence", reads=("signal:p_given",))
def cartography_confidence(p_given: np.ndarray) -> np.ndarray:
    """Dataset cartography (Swayamdipta et al., EMNLP 2020): 1 - mean over epochs of p(y|x).
    Hard-to-learn samples (low confidence) are the likely mislabels. Higher = more suspect."""
    return 1.0 - p_given.mean(axis=0)


@detector("cartography_variability", reads=("signal:p_given",), votes=False)
def cartography_variability(p_given: np.ndarray) -> np.ndarray:
    """Dataset cartography: std over epochs of p(y|x). Higher = more ambiguous (the model kept
    changing its mind). Not a mislabel score: mislabelled samples are mostly "hard to learn"
    (low confidence AND low variability), so it ranks clean samples first. Measured
    (bench/memorisation.py: 1,000 Fashion-MNIST images, 60 epochs, symmetric / pair / instance
    noise, five methods, one seed), its AUROC for noise was below 0.5 in 146 of 180 readings:
    0.06-0.38 for every method at epochs 5 and 10, and 0.06-0.16 at epoch 60 for EAC, GSMC
    and SCN; it rose above 0.5 only late in the CE and RUL runs that fitted the wrong labels
    (0.62-0.96 at epoch 60), where fitting a wrong label is itself the variability. It is
    reported to show that, and to map samples as the paper does, and does not vote
    (`votes=False`: no `detector_votes`, no `top-` view in `audit review`)."""
    return p_given.std(axis=0)


def ashman_d(means: np.ndarray, variances: np.ndarray) -> float:
    """Ashman's D between two Gaussian components (Ashman, Bird and Zepf, AJ 108, 1994):
    D = sqrt(2) |mu_1 - mu_2| / sqrt(s_1^2 + s_2^2), >= 0. Higher = better separated; above 2
    the two are cleanly apart (the textbook bound; it reads the means and variances only, not
    the weights, so it does not prove the data has two modes)."""
    mu, var = np.asarray(means, dtype=np.float64), np.asarray(variances, dtype=np.float64)
    return float(np.sqrt(2.0) * abs(mu[0] - mu[1]) / np.sqrt(max(var[0] + var[1], 1e-24)))


def loss_mixture(loss: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, float]:
    """DivideMix's two-component 1-D Gaussian mixture on the per-sample loss (its mean over the
    epochs of `loss` [epochs, N], min-max normalised): (posterior of the higher-mean component
    [N], P(noisy) in [0, 1], higher = more suspect; `ashman_d` between the two components)."""
    from sklearn.mixture import GaussianMixture  # imported when used: option checks stay quick

    x = loss.mean(axis=0).astype(np.float64)
    x = (x - x.min()) / max(x.max() - x.min(), 1e-12)
    gmm = GaussianMixture(2, max_iter=20, tol=1e-2, reg_covar=5e-4, random_state=seed)
    gmm.fit(x.reshape(-1, 1))
    noisy_component = int(np.argmax(gmm.means_.ravel()))
    posterior = gmm.predict_proba(x.reshape(-1, 1))[:, noisy_component]
    return posterior, ashman_d(gmm.means_.ravel(), gmm.covariances_.ravel())


@detector("loss_gmm", reads=("signal:loss",), decides=True)
def loss_gmm(loss: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """DivideMix (Li et al., ICLR 2020): the per-sample loss (here its mean over epochs),
    min-max normalised, fitted by a two-component 1-D Gaussian mixture (`loss_mixture`); score
    = posterior of the higher-mean component, P(noisy) in [0, 1]; flags = score > 0.5. Higher =
    more suspect."""
    posterior, _ = loss_mixture(loss, seed=seed)
    return posterior, posterior > 0.5


@detector("alpha", reads=("signal:alpha",))
def low_importance(alpha: np.ndarray) -> np.ndarray:
    """SCN: 1 - mean over epochs of the importance weight alpha in (0, 1). SCN learns low alpha
    for uncertain or mislabelled samples, so higher = more suspect."""
    return 1.0 - alpha.mean(axis=0)


@detector("uncertainty", reads=("signal:uncertainty",))
def mean_uncertainty(uncertainty: np.ndarray) -> np.ndarray:
    """RUL: mean over epochs of u = mean_d exp(log_var). Higher = more uncertain (suspect)."""
    return uncertainty.mean(axis=0)


@detector("kd", reads=("signal:kd",))
def mean_distillation_gap(kd: np.ndarray) -> np.ndarray:
    """GSMC: mean over epochs of KL(p_teacher(mirror) || p_student). Higher = the student
    departs from its EMA teacher's view of the mirrored image (suspect)."""
    return kd.mean(axis=0)


@detector("relabel", reads=("final_labels", "labels"), decides=True)
def relabelled(final_labels: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SCN: (score, flags): score 1.0 where training ended on a label other than the given one,
    else 0.0; flagged where it is 1. Higher = more suspect."""
    changed = np.asarray(final_labels) != np.asarray(given)
    return changed.astype(np.float64), changed


def aum_threshold_flags(
    aum: np.ndarray, threshold_samples: np.ndarray, *, percentile: float = 99.0
) -> tuple[np.ndarray, float]:
    """AUM's decision rule (Pleiss et al., NeurIPS 2020): `aum` is the (un-negated) area under
    the margin from a training run in which the `threshold_samples` (boolean [N]) were moved
    to an extra, fake class; a real sample is flagged when its AUM falls below the
    `percentile`-th percentile of the threshold samples' AUM. Returns (flags [N], threshold);
    threshold samples themselves are never flagged by this run."""
    threshold = float(np.percentile(aum[threshold_samples], percentile))
    return (aum < threshold) & ~threshold_samples, threshold


def aum_threshold_decision(
    runs: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, list[float]]:
    """AUM's flags from two threshold-sample trainings (`--aum-threshold`): `runs` holds, per
    training, (mean margin [N], its threshold samples [N] bool), the two subsets disjoint. The
    first run judges every sample but its own threshold samples; the second judges those.
    Returns (flags [N], the two thresholds)."""
    (aum1, fake1), (aum2, fake2) = runs
    flags1, threshold1 = aum_threshold_flags(aum1, fake1)
    flags2, threshold2 = aum_threshold_flags(aum2, fake2)
    flags = np.where(fake1, flags2, flags1)
    return flags, [threshold1, threshold2]
