"""The review dataset in the FiftyOne App (`audit review`): its look, saved on the dataset
(`dataset.app_config`: one color scheme, the fields a tile shows, the sidebar's order, a
description on every field the tool writes), and the App's launch.

- Colours by field, fixed, from the Okabe-Ito palette (distinct under the common colour-vision
  deficiencies): `given` orange (the label under suspicion), `suggested` blue (the proposed
  correction), `truth` green, `corrected` reddish purple, `prediction` grey. The sidebar shows
  each field's name in its colour: the legend of the chips on the tiles. (The scheme colours by
  value, which heatmap colormaps need, with every class of a field given the field's colour.)
- Tiles show `given`, `suggested`, `truth` and `corrected` (the sidebar's ticked fields).
  `prediction` is left unticked: it names the same class as `suggested` on every sample today
  (`auditor.review`), and is kept for FiftyOne Brain, which reads its `logits`. Its description
  says so.
- CAM heatmaps (`cam`, `cam_mirror`) are drawn with the colormap CAM_COLORSCALE over each
  heatmap's `range` (low = blue, high = red, as the report's overlays) at LABEL_OPACITY, so the
  face stays visible underneath; tick them in the sidebar.
- Sidebar: the label fields first, in the order above, then the suspicion, the review fields,
  and the detectors' scores and flags (collapsed: two per detector).

The look is saved when the dataset is made and again only when LOOK_VERSION changes: what an
annotator changes in the App (ticked fields, colours) is theirs on the next `audit review`.
FiftyOne 1.22 takes a session's colours from the dataset only when the App is launched on the
dataset itself (not on a view), and its App server draws heatmaps with the colormap of its own
configuration (`FIFTYONE_APP_COLORSCALE`), so `launch` passes the colours and sets that
variable for the server it starts, unless the user set it.
"""

from __future__ import annotations

import os

from auditor import brain
from auditor.fiftyone_setup import fo

LOOK_VERSION = 1  # dataset.info["audit_look"]: the look saved on the dataset
FIELD_COLOURS = {
    "given": "#E69F00",  # orange
    "suggested": "#0072B2",  # blue
    "truth": "#009E73",  # bluish green
    "corrected": "#CC79A7",  # reddish purple
    "prediction": "#999999",  # grey
}
TILE_FIELDS = ("given", "suggested", "truth", "corrected")  # ticked: drawn on every tile
CAM_FIELDS = ("cam", "cam_mirror")
CAM_COLORSCALE = "jet"  # a plotly colorscale name, as matplotlib's "jet" of the report
LABEL_OPACITY = 0.55
SUSPICION_FIELDS = ("suspicion", "flag_suspicion", "detector_votes", "is_noisy")
REVIEW_FIELDS = (
    "reviewed",
    "review_decision",
    "review_label",
    "review_reviewer",
    "review_note",
    "review_disagreement",
    "second_look",
)
DESCRIPTIONS = {
    "given": "The label the run trained on and scored: the one under suspicion",
    "suggested": "The tool's proposed correction: where a `relabel` with no other class goes",
    "prediction": (
        "The model's class (argmax of the run's probabilities) with logits for FiftyOne Brain; "
        "the same class as `suggested` on every sample today, so not drawn on tiles"
    ),
    "truth": "The true label, known only for injected noise or a noise file",
    "corrected": "Set it to the right class to relabel the sample (empty until an annotator does)",
    "suspicion": "The ensemble's suspicion: mean rank of its members; higher = more likely wrong",
    "detector_votes": "How many detectors put the sample in their top k (k = number flagged)",
    "flag_suspicion": "Flagged by the ensemble: one of the suspects",
    "is_noisy": "The given label is wrong (known only for injected noise or a noise file)",
    "cam": "Class activation map of the suggested class (blue low, red high)",
    "cam_mirror": "The same map on the mirrored image, mirrored back (EAC); one scale with `cam`",
    "reviewed": "Decided in an earlier round and the decision holds in this run",
    "review_decision": "The earlier decision (review ledger): keep, relabel or drop",
    "review_label": "The class the earlier decision kept or relabelled to",
    "review_reviewer": "Who made the earlier decision",
    "review_note": "The annotators' latest `note:` remark",
    "review_disagreement": "Relabelled earlier and flagged again by this run",
    "second_look": "An earlier decision this run contradicts: see the second-look view",
}


def color_scheme(fields: list[str], class_names: list[str]) -> fo.ColorScheme:
    """The saved color scheme: FIELD_COLOURS for those of `fields` the dataset has (the field
    and each of its `class_names`), CAM_COLORSCALE on its CAM heatmap fields, LABEL_OPACITY."""
    return fo.ColorScheme(
        color_by="value",
        opacity=LABEL_OPACITY,
        fields=[
            {
                "path": path,
                "fieldColor": colour,
                "colorByAttribute": "label",
                "valueColors": [{"value": name, "color": colour} for name in class_names],
            }
            for path, colour in FIELD_COLOURS.items()
            if path in fields
        ],
        colorscales=[
            {"path": path, "name": CAM_COLORSCALE} for path in CAM_FIELDS if path in fields
        ],
        default_colorscale={"name": CAM_COLORSCALE},
    )


def sidebar_groups(dataset: fo.Dataset) -> list:
    """FiftyOne's default sidebar groups with the label fields in FIELD_COLOURS' order first,
    then a `suspicion` group (SUSPICION_FIELDS), a `review` group (REVIEW_FIELDS) and a
    collapsed `scores` group of every other score_ / flag_ field."""
    fields = set(dataset.get_field_schema())
    groups = fo.DatasetAppConfig.default_sidebar_groups(dataset)
    suspicion = [f for f in SUSPICION_FIELDS if f in fields]
    review = [f for f in REVIEW_FIELDS if f in fields]
    scores = sorted(f for f in fields if f.startswith(("score_", "flag_")) and f not in suspicion)
    moved = set(suspicion) | set(review) | set(scores)
    for group in groups:
        group.paths = [p for p in group.paths if p not in moved]
        if group.name == "labels":
            first = [f for f in (*FIELD_COLOURS, *CAM_FIELDS) if f in group.paths]
            group.paths = first + [p for p in group.paths if p not in first]
    at = next((i + 1 for i, g in enumerate(groups) if g.name == "labels"), len(groups))
    groups[at:at] = [
        fo.SidebarGroupDocument(name="suspicion", paths=suspicion),
        fo.SidebarGroupDocument(name="review", paths=review),
        fo.SidebarGroupDocument(name="scores", paths=scores, expanded=False),
    ]
    return groups


def describe_fields(dataset: fo.Dataset) -> None:
    """DESCRIPTIONS on the dataset's fields (the App shows them in the sidebar), and one for
    every score_ / flag_ field."""
    for path in dataset.get_field_schema():
        text = DESCRIPTIONS.get(path)
        if text is None and path.startswith("score_"):
            text = f"{path[len('score_') :]}'s suspicion score: higher = more likely wrong"
        elif text is None and path.startswith("flag_"):
            text = f"Flagged by {path[len('flag_') :]}"
        if text is None:
            continue
        field = dataset.get_field(path)
        if field.description != text:
            field.description = text
            field.save()


def dress(dataset: fo.Dataset, class_names: list[str]) -> None:
    """Save the App's look on `dataset` (color scheme, ticked fields, sidebar, descriptions),
    unless it holds this LOOK_VERSION's already."""
    if dataset.info.get("audit_look") == LOOK_VERSION:
        return
    fields = list(dataset.get_field_schema())
    describe_fields(dataset)
    dataset.app_config.color_scheme = color_scheme(fields, class_names)
    dataset.app_config.active_fields = fo.ActiveFields(
        paths=[f for f in TILE_FIELDS if f in fields]
    )
    dataset.app_config.sidebar_groups = sidebar_groups(dataset)
    dataset.info["audit_look"] = LOOK_VERSION
    dataset.save()


def launch(dataset: fo.Dataset, address: str, port: int) -> None:
    """Serve the App for `dataset` on address:port until interrupted, open on its `suspects`
    view (the session's view, and the saved view the printed address names), the embeddings
    panel beside the grid (`brain.app_spaces`), in the dataset's colours with CAM_COLORSCALE
    for heatmaps (module docstring)."""
    os.environ.setdefault("FIFTYONE_APP_COLORSCALE", CAM_COLORSCALE)
    scheme = dataset.app_config.color_scheme
    session = fo.launch_app(
        view=dataset.load_saved_view("suspects"),
        spaces=brain.app_spaces(dataset),
        color_scheme=scheme.copy() if scheme is not None else None,
        address=address,
        port=port,
        remote=True,
        auto=False,
    )
    print(
        f"FiftyOne App: http://{address}:{port}/datasets/{dataset.name}?view=suspects "
        "(Ctrl-C to stop)",
        flush=True,
    )
    session.wait(-1)
