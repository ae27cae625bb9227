"""`report.html`: the run for people, one self-contained file (figures embedded as PNG data).

Sections: summary (data, noise, methods, timings), test accuracy per epoch, last-epoch loss of
clean vs noisy samples per method (EAC paper Fig. 5), precision-recall per detector, a UMAP map
of the embeddings coloured by given label with the flagged samples ringed (Fig. 3), the top
suspects with their CAMs on the image and on its mirror (Fig. 4), and given vs suggested
labels of the flagged samples. Figures that need the truth are left out, with a sentence
saying why, when it is unknown.
"""

from __future__ import annotations

import base64
import html
import os

import numpy as np
import pandas as pd

from auditor.evidence import Gallery
from auditor.outputs import figures

GALLERY = 12  # top suspects shown with their CAMs
MAP_POINTS = 20_000  # the UMAP map draws at most this many samples


def umap_coords(embeddings: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, 2-D UMAP coordinates) of at most MAP_POINTS samples. numba's compiled
    functions are cached under the audit cache folder, so only the first run pays the JIT."""
    from auditor.datasets.cache import cache_dir

    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))
    import umap

    rows = np.arange(len(embeddings))
    if len(rows) > MAP_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAP_POINTS, replace=False))
    reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1)
    return rows, reducer.fit_transform(embeddings[rows])


def img_tag(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def summary_table(manifest: dict, metrics: dict) -> str:
    noise = metrics.get("noise") or {}
    rows = [
        (
            "dataset",
            f"{manifest.get('dataset')} ({manifest.get('n_train')} train / {manifest.get('n_test')} test)",
        ),
        (
            "noise",
            f"{noise.get('type')}, nominal {noise.get('nominal_rate')}, real {noise.get('real_rate')}",
        ),
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
        for m, a in metrics.get("accuracy", {}).items() if a["last"] is not None
    )  # fmt: skip
    det = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{d['auroc']:.3f}</td><td>{d['ap']:.3f}</td></tr>"
        for n, d in sorted((metrics.get("detectors") or {}).items(), key=lambda kv: -(kv[1]["ap"] or 0))[:15]
        if d["auroc"] is not None
    )  # fmt: skip
    body = (
        "<table>"
        + "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        + "</table>"
    )
    if acc:
        body += (
            "<h3>Test accuracy</h3><table><tr><th>method</th><th>last</th><th>best</th><th>last 5</th></tr>"
            + acc
            + "</table>"
        )
    if det:
        body += (
            "<h3>Best detectors</h3><table><tr><th>detector</th><th>AUROC</th><th>AP</th></tr>"
            + det
            + "</table>"
        )
    return body


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
    no_truth = "<p>Left out: the true labels are unknown for this run (no injected noise or noise file).</p>"
    parts = [section("Summary", summary_table(manifest, metrics))]
    if any(a["per_epoch"] for a in metrics["accuracy"].values()):
        parts.append(
            section(
                "Test accuracy",
                img_tag(figures.accuracy_curves(metrics["accuracy"]), "test accuracy per epoch"),
            )
        )
    else:
        parts.append(section("Test accuracy", "<p>Left out: the dataset has no test split.</p>"))
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
    parts.append(section("Embedding map", img_tag(figures.embedding_map(
        coords, samples["given_label"].to_numpy()[rows], flagged[rows], class_names), "UMAP map")))  # fmt: skip
    if gallery is not None and len(gallery.rows):
        captions = [
            f"{samples['sample_id'].iat[i]}: given {class_names[samples['given_label'].iat[i]]}, "
            f"suggested {class_names[samples['suggested_label'].iat[i]]}"
            + ("" if not truth else f", true {class_names[int(samples['true_label'].iat[i])]}")
            for i in gallery.rows
        ]  # fmt: skip
        drawn = figures.cam_gallery(gallery.images, gallery.cams, gallery.mirror_cams, captions)
        title = f"Top suspects and their CAMs (suggested class, {gallery.method})"
        parts.append(section(title, img_tag(drawn, "CAM gallery")))
    if flagged.any():
        parts.append(section("Flagged samples: given vs suggested", img_tag(figures.confusion(
            samples["given_label"].to_numpy()[flagged], samples["suggested_label"].to_numpy()[flagged], class_names), "confusion")))  # fmt: skip
    title = f"audit report: {manifest.get('dataset')} / {manifest.get('run_id')}"
    return TEMPLATE.format(title=html.escape(title), body="\n".join(parts))


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
section {{ margin-bottom: 2em; }} img {{ max-width: 100%; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }} td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; }}
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
