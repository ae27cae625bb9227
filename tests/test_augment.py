import torch

from auditor.training.augment import Augmenter, Normalizer


def test_erase_masks_follow_random_erasing_bounds():
    aug = Augmenter(torch.Generator().manual_seed(0), erase_p=1.0)
    masks = aug.erase_masks(2000, 40, 40, torch.device("cpu"))
    area = masks.float().sum(dim=(1, 2, 3)) / (40 * 40)
    # scale in [0.02, 0.25] of the image (up to rounding of the sides)
    assert area.min() >= 0.01 and area.max() <= 0.30
    # every mask is one axis-aligned rectangle: its bounding box is full
    for m in masks[:50, 0]:
        rows, cols = m.any(1).nonzero(), m.any(0).nonzero()
        box = m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all()


def test_erase_probability_and_value():
    aug = Augmenter(torch.Generator().manual_seed(1))
    x = torch.ones(4000, 1, 16, 16)
    out = aug.random_erase(x)
    erased = (out == 0).flatten(1).any(1).float().mean()
    assert 0.45 < erased < 0.55
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_hflip_mirrors_about_half_the_batch():
    aug = Augmenter(torch.Generator().manual_seed(2))
    x = torch.arange(4.0).view(1, 1, 1, 4).repeat(1000, 1, 1, 1)
    out = aug.random_hflip(x)
    flipped = (out[:, 0, 0, 0] == 3).float().mean()
    assert 0.45 < flipped < 0.55
    assert torch.equal(out[out[:, 0, 0, 0] == 3][0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))


def test_augmentation_is_seeded():
    x = torch.randn(64, 3, 8, 8)
    a = Augmenter(torch.Generator().manual_seed(5)).random_erase(x)
    b = Augmenter(torch.Generator().manual_seed(5)).random_erase(x)
    assert torch.equal(a, b)


def test_normalizer_standardises_channels():
    pixels = torch.randint(0, 256, (100, 3, 4, 4), dtype=torch.uint8)
    norm = Normalizer.fit(pixels)
    x = norm(pixels)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)


def test_epoch_order_every_sample_once_and_balanced_extras():
    from auditor.training.sampling import epoch_order

    labels = torch.tensor([0] * 6 + [1] * 2 + [2] * 3)
    order, recorded = epoch_order(
        labels, balanced=False, generator=torch.Generator().manual_seed(0)
    )
    assert sorted(order.tolist()) == list(range(11)) and recorded.all()
    order, recorded = epoch_order(labels, balanced=True, generator=torch.Generator().manual_seed(0))
    assert torch.bincount(labels[order]).tolist() == [6, 6, 6]  # topped up to the largest class
    assert sorted(order[recorded].tolist()) == list(range(11))  # each sample recorded exactly once


def test_pixel_noise_on_the_0_255_scale_clipped_and_truncated():
    from auditor.training.augment import Normalizer

    normalizer = Normalizer((0.5,), (0.25,))
    pixels = torch.tensor([[[[0, 100], [200, 255]]], [[[10, 20], [30, 40]]]], dtype=torch.uint8)
    x = normalizer(pixels)
    aug = Augmenter(torch.Generator().manual_seed(3), normalizer=normalizer)
    out = aug.pixel_noise(x, std=20.0, p=1.0)
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(x.shape, generator=g) * 20.0
    expected = (pixels.float() + noise).clamp(0, 255).floor()
    assert torch.allclose(out, normalizer(expected.to(torch.uint8)), atol=1e-5)
    assert not torch.equal(out, x)
    untouched = Augmenter(torch.Generator().manual_seed(3), normalizer=normalizer)
    assert torch.equal(untouched.pixel_noise(x, std=20.0, p=0.0), x)


def test_flip_or_noise_mirrors_a_quarter_noises_a_quarter_keeps_half():
    from auditor.training.augment import Normalizer

    normalizer = Normalizer((0.5,), (0.25,))
    row = torch.tensor([[[[10, 60, 110, 160]]]], dtype=torch.uint8).repeat(4000, 1, 1, 1)
    x = normalizer(row)
    out = Augmenter(torch.Generator().manual_seed(4), normalizer=normalizer).flip_or_noise(x, 5.0)
    kept = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    noised = ~kept & ~mirrored
    for share, expected in ((kept, 0.5), (mirrored, 0.25), (noised, 0.25)):
        assert abs(share.float().mean() - expected) < 0.03
    # noise is on the 0-255 scale, truncated to whole pixel values
    pixels = out[noised] * 0.25 + 0.5
    assert torch.allclose(pixels * 255, (pixels * 255).round(), atol=1e-3)


def test_without_mirror_no_image_is_mirrored_and_the_random_stream_is_kept():
    from auditor.training.augment import Normalizer

    normalizer = Normalizer((0.5,), (0.25,))
    row = torch.tensor([[[[10, 60, 110, 160]]]], dtype=torch.uint8).repeat(4000, 1, 1, 1)
    x = normalizer(row)  # asymmetric: its mirror differs from it and from its noised versions
    plain = Augmenter(torch.Generator().manual_seed(4), normalizer=normalizer, mirror=False)
    assert torch.equal(plain.random_hflip(x), x)
    out = plain.flip_or_noise(x, 5.0)
    kept = (out == x).flatten(1).all(1)
    assert not (out == x.flip(-1)).flatten(1).all(1).any()
    assert abs(kept.float().mean() - 0.75) < 0.03  # the mirror branch keeps the image
    # the same draws as with mirroring: the images it leaves alone there are noised alike here
    mirroring = Augmenter(torch.Generator().manual_seed(4), normalizer=normalizer)
    mirroring.random_hflip(x)
    reference = mirroring.flip_or_noise(x, 5.0)
    changed = ~(reference == x).flatten(1).all(1) & ~(reference == x.flip(-1)).flatten(1).all(1)
    assert torch.equal(out[changed], reference[changed])
    assert torch.equal(out[~changed], x[~changed])
