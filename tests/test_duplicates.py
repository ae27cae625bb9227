"""Near-duplicate images with different given labels (`auditor.duplicates`) on synthetic arrays."""

import numpy as np

from auditor.duplicates import COLUMNS, near_duplicates

CLASSES = ["a", "b", "c", "d"]


def planted(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(sample ids, labels, embeddings [n, 16], pixels uint8 [n, 1, 8, 8]), all distinct."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"s{i:03d}" for i in range(n)])
    return (
        ids,
        np.arange(n) % 4,
        rng.normal(size=(n, 16)),
        rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8),
    )


def test_an_exact_copy_with_another_label_is_listed_and_nothing_else():
    ids, labels, emb, px = planted()
    px[7], emb[7], labels[7] = px[3], emb[3], (labels[3] + 1) % 4  # a copy, relabelled
    px[11], emb[11], labels[11] = px[5], emb[5], labels[5]  # a copy with the same label
    pairs = near_duplicates(ids, labels, CLASSES, emb, px)
    assert list(pairs.columns) == COLUMNS
    assert pairs.to_dict("records") == [
        {
            "sample_id_a": "s003",
            "sample_id_b": "s007",
            "given_a": CLASSES[labels[3]],
            "given_b": CLASSES[labels[7]],
            "distance": pairs["distance"][0],
            "kind": "exact",
        }
    ]
    assert pairs["distance"][0] < 1e-6


def test_a_group_of_identical_images_gives_each_pair_whose_labels_differ():
    ids, labels, emb, px = planted()
    for row, label in ((20, 0), (21, 1), (22, 1)):
        px[row], emb[row], labels[row] = px[0], emb[0], label
    labels[0] = 0
    pairs = near_duplicates(ids, labels, CLASSES, emb, px)
    got = set(zip(pairs["sample_id_a"], pairs["sample_id_b"], strict=True))
    assert got == {("s000", "s021"), ("s000", "s022"), ("s020", "s021"), ("s020", "s022")}
    assert set(pairs["kind"]) == {"exact"}


def test_a_near_copy_in_embedding_space_is_listed_as_near():
    ids, labels, emb, px = planted()
    emb[9] = emb[2] + 1e-4 * np.random.default_rng(1).normal(size=16)  # other pixels, same content
    labels[9] = (labels[2] + 1) % 4
    pairs = near_duplicates(ids, labels, CLASSES, emb, px)
    assert pairs[["sample_id_a", "sample_id_b", "kind"]].values.tolist() == [
        ["s002", "s009", "near"]
    ]


def test_no_pairs_gives_an_empty_table_with_its_columns():
    ids, labels, emb, px = planted()
    pairs = near_duplicates(ids, labels, CLASSES, emb, px)
    assert pairs.empty and list(pairs.columns) == COLUMNS
    one = near_duplicates(ids[:1], labels[:1], CLASSES, emb[:1], px[:1])
    assert one.empty
