"""`report.html`: the run for people, one self-contained file (figures embedded as PNG data).

Sections: summary (data, noise, methods, timings, test accuracy by protocol, the best
detectors), how `suspicion` is computed (with the ensemble's decisions and, when the truth is
known, the deciding detectors' precision / recall / F1), test accuracy per epoch, memorisation,
last-epoch loss of clean vs noisy samples per method (EAC paper Fig. 5), precision-recall per
detector, a UMAP map of the embeddings coloured by given label with the flagged samples shaded
by suspicion (Fig. 3), the top suspects with their CAMs on the image and on its mirror (Fig. 4),
given vs suggested labels of the flagged samples, and the commands to run next. Figures that
need the truth are left out, with a sentence saying why, when it is unknown.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.evidence import Gallery
from auditor.outputs import figures

GALLERY = 12  # top suspects shown with their CAMs
MAP_POINTS = 20_000  # the UMAP map draws at most this many samples


def umap_coords(embeddings: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, 2-D UMAP coordinates) of at most MAP_POINTS samples. UMAP's compiled
    functions are cached on disk (`auditor.numba_cache`): only the first run pays the JIT."""
    from auditor.numba_cache import cached_umap

    umap = cached_umap()

    rows = np.arange(len(embeddings))
    if len(rows) > MAP_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAP_POINTS, replace=False))
    reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1)
    return rows, reducer.fit_transform(embeddings[rows])


def img_tag(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def split_title(metrics: dict) -> str:
    """ "Test" or "Validation": the split `metrics["accuracy"]` was read on."""
    return (metrics.get("accuracy_split") or "test").capitalize()


def summary_table(manifest: dict, metrics: dict) -> str:
    noise = metrics.get("noise") or {}
    real = "-" if noise.get("real_rate") is None else f"{noise['real_rate']:.3f}"
    rows = [
        (
            "dataset",
            f"{manifest.get('dataset')} ({manifest.get('n_train')} train / "
            f"{manifest.get('n_test')} test)",
        ),
        ("noise", f"{noise.get('type')}, nominal {noise.get('nominal_rate')}, real {real}"),
        ("methods", ", ".join(metrics.get("accuracy", {}))),
        ("flagged", str((metrics.get("ensemble") or {}).get("flagged"))),
        (
            "timings (s)",
            ", ".join(f"{k} {v:.1f}" for k, v in (manifest.get("timings_s") or {}).items()),
        ),
        ("skipped images", str(len(manifest.get("skipped") or []))),
    ]
    acc = "".join(
        f"<tr><td>{html.escape(m)}</td><td>{a['last']:.3f}</td><td>{a['best']:.3f}</td><td>{a['last5_mean']:.3f}</td></tr>"
        for m, a in metrics.get("accuracy", {}).items()
        if a["last"] is not None
    )
    det = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{d['auroc']:.3f}</td><td>{d['ap']:.3f}</td></tr>"
        for n, d in sorted(
            (metrics.get("detectors") or {}).items(), key=lambda kv: -(kv[1]["ap"] or 0)
        )[:15]
        if d["auroc"] is not None
    )
    body = (
        "<table>"
        + "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        + "</table>"
    )
    if acc:
        body += (
            f"<h3>{split_title(metrics)} accuracy by protocol</h3>"
            "<table><tr><th>method</th><th>last epoch</th>"
            "<th>best epoch</th><th>mean of the last 5</th></tr>" + acc + "</table>"
        )
    if det:
        body += (
            "<h3>Best detectors by AP</h3>"
            "<table><tr><th>detector</th><th>AUROC</th><th>AP</th></tr>" + det + "</table>"
        )
    return body


def suspicion_section(metrics: dict, truth: bool) -> str:
    """What `suspicion` is, in one paragraph (`auditor.detectors.ensemble`, `auditor.scoring`),
    the ensemble's decisions as the run stated them, and, when the truth is known, the deciding
    detectors' precision / recall / F1 (`deciding_table`)."""
    ensemble = metrics.get("ensemble") or {}
    members = ", ".join(f"<code>{html.escape(m)}</code>" for m in ensemble.get("members", []))
    paragraph = (
        "<p><code>suspicion</code> is the ensemble score, in [0, 1]: the higher, the more "
        "likely the given label is wrong. For each training sample it is the mean, over its "
        f"member detectors ({members}), of the sample's rank under that detector divided by "
        "N - 1 (N samples; ties share their mean rank), so 1 means the most suspect sample of "
        "every member. Ranks need no calibration between scores on different scales (a loss, "
        "a margin, a distance). The members are chosen from the run's own evidence, never from "
        "the truth: the methods whose test (or validation) accuracy is close to the best, and "
        "detectors suited "
        "to the structure of the noise the run estimates. The "
        f"{ensemble.get('flagged')} samples with the highest suspicion are flagged; their number "
        "is the mean of the estimates of how many labels are wrong (see the decisions "
        "below). Flagged samples are the ones to review first.</p>"
    )
    decisions = "".join(f"<li>{html.escape(d)}</li>" for d in ensemble.get("decisions", []))
    body = paragraph + (f"<p>What the run decided:</p><ul>{decisions}</ul>" if decisions else "")
    if truth:
        body += deciding_table(metrics.get("detectors") or {})
    else:
        body += (
            "<p>Precision, recall and F1 of the flags need the true labels; this run has none.</p>"
        )
    return body


def deciding_table(detectors: dict) -> str:
    """The detectors that flag (their metrics have `f1`): `suspicion` first, then by F1. Precision
    = flagged and noisy / flagged, recall = flagged and noisy / noisy, F1 their harmonic mean."""
    deciding = {n: d for n, d in detectors.items() if "f1" in d}
    order = sorted(deciding, key=lambda n: (n != "suspicion", -deciding[n]["f1"]))
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{deciding[n]['precision']:.3f}</td>"
        f"<td>{deciding[n]['recall']:.3f}</td><td>{deciding[n]['f1']:.3f}</td>"
        f"<td>{deciding[n]['flagged']}</td></tr>"
        for n in order
    )
    return (
        "<h3>Deciding detectors against the truth</h3>"
        "<table><tr><th>detector</th><th>precision</th>"
        f"<th>recall</th><th>F1</th><th>flagged</th></tr>{rows}</table>"
    )


def run_folder(manifest: dict) -> str:
    """The run folder as `audit run` printed it: `<out>/<dataset>/<run id>`
    (`auditor.outputs.run_folder.create_run_dir`), relative to where the run was started."""
    out = (manifest.get("config") or {}).get("out", "reports")
    return str(Path(out) / str(manifest.get("dataset")) / str(manifest.get("run_id")))


def next_steps(manifest: dict) -> str:
    """The commands that take the suspects to annotators and back into training, in order."""
    run = run_folder(manifest)
    steps = [
        (
            f"audit review {run}",
            "open the suspects in the FiftyOne App and tag each sample "
            "(or its label) relabel, keep or drop; a relabel takes the corrected label, a "
            "label:<class> tag or the suggestion; note:<text> tags are remarks",
        ),
        (
            f"audit export {run} --from-fiftyone",
            f"write the decisions to {run}/relabel-reviewed.csv "
            "and the dataset's review ledger (the next round leaves them out of the suspects)",
        ),
        (
            f"audit apply {run} --relabels {run}/relabel-reviewed.csv --out LABELS",
            "write a corrected label file LABELS in the dataset's format (never the dataset's own)",
        ),
        (f"audit run {manifest.get('dataset')} --labels LABELS", "retrain on the corrected labels"),
    ]
    items = "".join(
        f"<li><code>{html.escape(command)}</code>: {html.escape(what)}</li>"
        for command, what in steps
    )
    legend = "".join(
        f"<tr><td><code>{html.escape(chip)}</code></td><td>{html.escape(what)}</td></tr>"
        for chip, what in CHIP_LEGEND
    )
    return (
        f"<p>From the folder where this run was started:</p><ol>{items}</ol>"
        f"<p>What a tile of the FiftyOne App shows:</p><table>{legend}</table>"
    )


CHIP_LEGEND = (
    ("given", "the label the run trained on: the one under suspicion"),
    ("prediction", "the model's class (argmax of the probabilities), with confidence and logits"),
    ("suggested", "the proposed correction, where a bare relabel goes (today the same argmax)"),
    ("truth", "the true label, only when the run knows it (injected noise, a noise file)"),
    ("corrected", "empty until an annotator sets it: the class a relabel goes to"),
    (
        "cam, cam_mirror",
        "heatmaps on the suspects: the suggested class's CAM on the image and on its mirror",
    ),
    ("reviewed, review_decision", "decided in an earlier round (the dataset's review ledger)"),
    ("duplicate_of", "the other sample of a near-duplicate pair with a different label"),
)


def build_report(
    *,
    manifest: dict,
    metrics: dict,
    samples: pd.DataFrame,
    last_loss: dict[str, np.ndarray],
    embeddings: np.ndarray,
    gallery: Gallery | None,
    class_names: list[str],
    seed: int,
) -> str:
    """The report's HTML. `embeddings` are those of the best trusted method; `gallery` holds the
    top suspects' images and CAMs (None when that method has no CAMs)."""
    truth = samples["is_noisy"].notna().all()
    noisy = samples["is_noisy"].to_numpy(dtype=bool) if truth else None
    flagged = samples["flag_suspicion"].to_numpy(dtype=bool)
    no_truth = (
        "<p>Left out: the true labels are unknown for this run (no injected noise or noise "
        "file).</p>"
    )
    parts = [
        section("Summary", summary_table(manifest, metrics)),
        section("What suspicion means", suspicion_section(metrics, truth)),
    ]
    split = metrics.get("accuracy_split") or "test"
    title = f"{split.capitalize()} accuracy per epoch"
    if any(a["per_epoch"] for a in metrics["accuracy"].values()):
        curves = img_tag(figures.accuracy_curves(metrics["accuracy"], split), title.lower())
    else:
        curves = "<p>Left out: the dataset has no test split and the run held none out.</p>"
    parts.append(section(title, curves))
    memorised = metrics["memorisation"]
    verdicts = "".join(
        f"<li><b>{html.escape(m)}</b>: {html.escape(c['verdict'])}</li>"
        for m, c in memorised.items()
    )
    picture = img_tag(figures.memorisation_curves(memorised), "memorisation per epoch")
    parts.append(section("Memorisation", f"<ul>{verdicts}</ul>{picture}"))
    if truth:
        parts.append(
            section(
                "Loss of clean and noisy samples",
                img_tag(figures.loss_histograms(last_loss, noisy), "loss histograms"),
            )
        )
        dets = metrics["detectors"]
        scored = [n for n in dets if f"score_{n}" in samples]  # not the flag-only detectors
        ranked = sorted(scored, key=lambda n: -(dets[n]["ap"] or 0))[:6]
        scores = {
            n: samples["suspicion" if n == "suspicion" else f"score_{n}"].to_numpy()
            for n in ["suspicion", *ranked]
        }
        aps = {n: dets[n]["ap"] for n in scores}
        parts.append(
            section(
                "Precision-recall per detector",
                img_tag(figures.pr_figure([("detectors", scores, noisy, aps)]), "precision-recall"),
            )
        )
    else:
        parts += [
            section("Loss of clean and noisy samples", no_truth),
            section("Precision-recall per detector", no_truth),
        ]
    rows, coords = umap_coords(embeddings, seed)
    drawn = figures.embedding_map(
        coords,
        samples["given_label"].to_numpy()[rows],
        flagged[rows],
        samples["suspicion"].to_numpy()[rows],
        class_names,
    )
    parts.append(section("Embedding map", img_tag(drawn, "UMAP map")))
    if gallery is not None and len(gallery.rows):
        captions = [
            f"{samples['sample_id'].iat[i]}: given {class_names[samples['given_label'].iat[i]]}, "
            f"suggested {class_names[samples['suggested_label'].iat[i]]}"
            + ("" if not truth else f", true {class_names[int(samples['true_label'].iat[i])]}")
            for i in gallery.rows
        ]
        drawn = figures.cam_gallery(gallery.images, gallery.cams, gallery.mirror_cams, captions)
        title = f"Top suspects and their CAMs (suggested class, {gallery.method})"
        parts.append(section(title, img_tag(drawn, "CAM gallery")))
    if flagged.any():
        parts.append(
            section(
                "Flagged samples: given vs suggested",
                img_tag(
                    figures.confusion(
                        samples["given_label"].to_numpy()[flagged],
                        samples["suggested_label"].to_numpy()[flagged],
                        class_names,
                    ),
                    "confusion",
                ),
            )
        )
    parts.append(section("Next: review the suspects", next_steps(manifest)))
    title = f"audit report: {manifest.get('dataset')} / {manifest.get('run_id')}"
    return TEMPLATE.format(title=html.escape(title), body="\n".join(parts))


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
section {{ margin-bottom: 2em; }} img {{ max-width: 100%; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; }}
</style></head>
<body><h1>{title}</h1>
{body}
<script>
window.addEventListener("load", () => {{
  const images = Array.from(document.images);
  document.body.dataset.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesTotal = images.length;
}});
</script>
</body></html>
"""
