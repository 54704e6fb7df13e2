"""Tests for helpers.augment: label weights match pasted pixels, boxes stay inside, seeds replay."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.augment import (
    KINDS,
    AugmentConfig,
    _sample_beta,
    augment_batch,
    augment_dataset,
    band_cutmix,
    band_cutmix_with_box,
    cutmix,
    cutmix_with_box,
    load_augment_config,
    mixup,
    sample_box,
    save_augment_config,
    spec_augment,
)

tf = pytest.importorskip("tensorflow")

PROPERTY = settings(max_examples=30, deadline=None)
seeds = st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1))
MIXERS = {"cutmix": cutmix, "bandcutmix": band_cutmix, "mixup": mixup}


def distinct_batch(n: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Example i is filled with the constant i + 1 and labelled class i (one-hot, n classes)."""
    x = np.broadcast_to(
        np.arange(1, n + 1, dtype=np.float32)[:, None, None, None], (n, height, width, 1)
    )
    return x.copy(), np.eye(n, dtype=np.float32)


def random_batch(n=6, height=12, width=20, n_classes=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, height, width, 1)).astype(np.float32)
    y = np.eye(n_classes, dtype=np.float32)[rng.integers(0, n_classes, n)]
    return x, y


def check_pasted_region(x_in, y_in, x_out, y_out, band: bool) -> None:
    """Each output is its input with one rectangle (a band if ``band``) from one partner, and the
    partner's label weight is exactly the fraction of pixels that changed."""
    n, height, width, _ = x_in.shape
    np.testing.assert_allclose(y_out.sum(axis=1), 1.0, atol=1e-6)
    for i in range(n):
        changed = x_out[i, :, :, 0] != x_in[i, :, :, 0]
        if not changed.any():  # nothing pasted, or the partner was the example itself
            np.testing.assert_allclose(y_out[i], y_in[i], atol=1e-6)
            continue
        partner_values = np.unique(x_out[i, :, :, 0][changed])
        assert partner_values.size == 1, "the pasted region comes from one partner"
        partner = int(partner_values[0]) - 1
        rows, cols = changed.any(axis=1), changed.any(axis=0)
        assert (changed == np.outer(rows, cols)).all(), "the pasted region is a rectangle"
        for line in (rows, cols):
            hits = np.flatnonzero(line)
            assert hits[-1] - hits[0] + 1 == hits.size, "the rectangle is contiguous"
        if band:
            assert rows.all() or cols.all(), "a band spans the full height or the full width"
        area = changed.mean()
        assert y_out[i, partner] == pytest.approx(area, abs=1e-6)
        assert y_out[i, i] == pytest.approx(1.0 - area, abs=1e-6)


# --- CutMix and band CutMix ------------------------------------------------------------------


@PROPERTY
@given(
    n=st.integers(1, 6),
    height=st.integers(1, 24),
    width=st.integers(1, 32),
    alpha=st.floats(0.05, 5.0),
    seed=seeds,
    band=st.booleans(),
)
def test_partner_weight_is_pasted_area(n, height, width, alpha, seed, band):
    x, y = distinct_batch(n, height, width)
    mix = band_cutmix if band else cutmix
    x_out, y_out = (t.numpy() for t in mix(x, y, seed, alpha=alpha))
    check_pasted_region(x, y, x_out, y_out, band=band)


@PROPERTY
@given(n=st.integers(2, 6), height=st.integers(1, 24), width=st.integers(1, 32), seed=seeds)
def test_mix_box_reports_the_pasted_box(n, height, width, seed):
    x, y = distinct_batch(n, height, width)
    for with_box in (cutmix_with_box, band_cutmix_with_box):
        x_out, y_out, box = with_box(x, y, seed)
        for i in range(n):
            top, left = int(box.top[i]), int(box.left[i])
            inside = np.zeros((height, width), bool)
            inside[top : top + int(box.height[i]), left : left + int(box.width[i])] = True
            partner = int(box.partner[i])
            expected = np.where(inside, partner + 1, i + 1)
            np.testing.assert_array_equal(x_out[i, :, :, 0], expected)
            assert float(box.area[i]) == pytest.approx(inside.mean(), abs=1e-7)
            np.testing.assert_allclose(
                y_out[i], (1 - inside.mean()) * y[i] + inside.mean() * y[partner], atol=1e-6
            )


@PROPERTY
@given(
    lam=st.floats(0.0, 1.0),
    height=st.integers(1, 500),
    width=st.integers(1, 500),
    seed=seeds,
)
def test_box_stays_inside(lam, height, width, seed):
    top, left, box_h, box_w = (int(v) for v in sample_box(lam, height, width, seed))
    assert 0 <= top and 0 <= box_h and top + box_h <= height
    assert 0 <= left and 0 <= box_w and left + box_w <= width
    side = np.sqrt(1.0 - lam)
    assert box_h <= round(side * height) + 1 and box_w <= round(side * width) + 1


def test_sample_box_batched_and_lambda_one_gives_empty_box():
    lam = tf.constant([1.0, 1.0, 0.0, 0.5])
    top, left, box_h, box_w = sample_box(lam, 40, 60, [3, 4])
    assert top.shape == left.shape == box_h.shape == box_w.shape == (4,)
    assert box_h.numpy()[:2].tolist() == [0, 0] and box_w.numpy()[:2].tolist() == [0, 0]
    # λ = 0: a full-size box with a uniform centre, clipped: at least half of each side survives
    assert box_h[2] >= 20 and box_w[2] >= 30


def test_alpha_to_zero_gives_input_or_pure_partner():
    n = 64
    x, y = distinct_batch(n, 8, 10)
    x_out, y_out, box = cutmix_with_box(x, y, [5, 6], alpha=1e-4)
    lam = box.lam.numpy()
    ends = np.minimum(lam, 1.0 - lam)
    assert (ends < 1e-6).all(), "Beta(α→0, α→0) puts λ at 0 or 1"
    keep = lam > 0.5
    assert 0 < keep.sum() < n, "... with even odds"
    np.testing.assert_array_equal(x_out.numpy()[keep], x[keep])  # λ ≈ 1: the input back
    np.testing.assert_array_equal(y_out.numpy()[keep], y[keep])
    check_pasted_region(x, y, x_out.numpy(), y_out.numpy(), band=False)

    x_mix, y_mix = (t.numpy() for t in mixup(x, y, [5, 6], alpha=1e-4))
    picked = x_mix[:, 0, 0, 0].astype(int) - 1  # mixup with λ ∈ {0, 1}: one whole example
    np.testing.assert_array_equal(x_mix, x[picked])
    np.testing.assert_allclose(y_mix, y[picked], rtol=0, atol=1e-6)
    assert (picked != np.arange(n)).any() and (picked == np.arange(n)).any()


@pytest.mark.parametrize("kind", ["cutmix", "bandcutmix", "mixup"])
def test_batch_of_one_mixes_with_itself(kind):
    x, y = random_batch(n=1)
    for seed in range(5):
        x_out, y_out = MIXERS[kind](x, y, seed)
        np.testing.assert_allclose(x_out, x, rtol=0, atol=1e-6)
        np.testing.assert_allclose(y_out, y, rtol=0, atol=1e-6)


# --- mixup and SpecAugment -------------------------------------------------------------------


@PROPERTY
@given(n=st.integers(1, 8), alpha=st.floats(0.05, 5.0), seed=seeds)
def test_mixup_labels_are_the_same_lambda_mix(n, alpha, seed):
    # x[i] carries the one-hot code of example i along the frequency axis, like its label
    x = np.eye(n, dtype=np.float32)[:, :, None, None]
    y = np.eye(n, dtype=np.float32)
    x_out, y_out = (t.numpy() for t in mixup(x, y, seed, alpha=alpha))
    np.testing.assert_allclose(x_out[:, :, 0, 0], y_out, atol=1e-6)
    np.testing.assert_allclose(y_out.sum(axis=1), 1.0, atol=1e-6)
    assert (np.count_nonzero(y_out > 1e-7, axis=1) <= 2).all(), "at most two examples mixed"


def test_beta_sampler_moments():
    lam = _sample_beta(2.0, 4000, [7, 8]).numpy()
    assert lam.min() >= 0.0 and lam.max() <= 1.0
    assert lam.mean() == pytest.approx(0.5, abs=0.02)
    assert lam.var() == pytest.approx(1 / (4 * (2 * 2.0 + 1)), abs=0.01)  # 1 / (4(2α+1))


@PROPERTY
@given(
    freq_masks=st.integers(0, 3),
    freq_width=st.integers(0, 12),
    time_masks=st.integers(0, 3),
    time_width=st.integers(0, 12),
    extra_bins=st.integers(1, 20),
    extra_frames=st.integers(1, 20),
    seed=seeds,
)
def test_spec_augment_masks_within_widths(
    freq_masks, freq_width, time_masks, time_width, extra_bins, extra_frames, seed
):
    # more bins/frames than the masks can cover, so a full row is always a frequency mask
    height = freq_masks * freq_width + extra_bins
    width = time_masks * time_width + extra_frames
    x, y = random_batch(n=3, height=height, width=width, seed=seed[0])
    x_out, y_out = spec_augment(x, y, seed, freq_masks, freq_width, time_masks, time_width)
    x_out, y_out = x_out.numpy(), y_out.numpy()
    np.testing.assert_array_equal(y_out, y)
    changed = x_out != x
    np.testing.assert_allclose(x_out[changed], x.mean(), atol=1e-5)  # the batch mean
    for i in range(len(x)):
        cells = changed[i, :, :, 0]
        rows, cols = cells.all(axis=1), cells.all(axis=0)
        assert (cells == (rows[:, None] | cols[None, :])).all(), "masks are full bands"
        assert rows.sum() <= freq_masks * freq_width
        assert cols.sum() <= time_masks * time_width


# --- shapes, graph mode, seeds ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_dtypes_eager_and_graph(kind):
    config = AugmentConfig(kind=kind, prob=0.7)
    x, y = random_batch(n=5, height=10, width=14)
    x_out, y_out = augment_batch(tf.constant(x), tf.constant(y), [1, 2], config)
    assert x_out.shape == x.shape and y_out.shape == y.shape
    assert x_out.dtype == tf.float32 and y_out.dtype == tf.float32

    dynamic = tf.function(
        lambda a, b, s: augment_batch(a, b, s, config),
        input_signature=[
            tf.TensorSpec([None, None, None, 1], tf.float32),
            tf.TensorSpec([None, 5], tf.float32),
            tf.TensorSpec([2], tf.int64),
        ],
    )
    x_graph, y_graph = dynamic(x, y, tf.constant([1, 2], tf.int64))
    np.testing.assert_allclose(x_graph, x_out, atol=1e-6)  # graph and eager agree
    np.testing.assert_allclose(y_graph, y_out, atol=1e-6)

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)  # last batch is partial
    out = augment_dataset(ds, config, seed=0)
    assert out.element_spec == ds.element_spec
    assert [int(b[0].shape[0]) for b in out] == [2, 2, 1]


@pytest.mark.parametrize("kind", ["cutmix", "bandcutmix", "mixup", "specaugment"])
def test_same_seed_same_batch_different_seed_differs(kind):
    config = AugmentConfig(kind=kind)
    x, y = random_batch(n=8)
    first = augment_batch(x, y, [1, 2], config)
    again = augment_batch(x, y, tf.constant([1, 2]), config)
    other = augment_batch(x, y, [3, 4], config)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_augment_dataset_new_mixes_each_epoch_and_replays_for_a_seed():
    x, y = random_batch(n=12)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    config = AugmentConfig(kind="cutmix")

    def epoch(dataset):
        return [b[0].numpy() for b in dataset]

    pipeline = augment_dataset(ds, config, seed=11)
    epoch1, epoch2 = epoch(pipeline), epoch(pipeline)
    assert not any(np.array_equal(a, b) for a, b in zip(epoch1, epoch2, strict=True))
    fresh = augment_dataset(ds, config, seed=11)
    for a, b in zip(epoch1 + epoch2, epoch(fresh) + epoch(fresh), strict=True):
        np.testing.assert_array_equal(a, b)
    other = epoch(augment_dataset(ds, config, seed=12))
    assert not np.array_equal(np.stack(other), np.stack(epoch1))


def test_augment_dataset_rejects_unbatched():
    x, y = random_batch(n=4)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    with pytest.raises(ValueError, match="batched"):
        augment_dataset(ds, AugmentConfig(kind="mixup"), seed=0)


# --- config and identities -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_prob_zero_and_kind_none_are_identities(kind):
    x, y = random_batch()
    for config in (AugmentConfig(kind=kind, prob=0.0), AugmentConfig(kind="none")):
        x_out, y_out = augment_batch(x, y, [1, 2], config)
        np.testing.assert_array_equal(x_out, x)
        np.testing.assert_array_equal(y_out, y)


def test_prob_gates_whole_batches():
    x, y = random_batch(n=40)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    out = augment_dataset(ds, AugmentConfig(kind="mixup", prob=0.5), seed=3)
    untouched = [np.array_equal(a[0], b[0].numpy()) for a, b in zip(ds, out, strict=True)]
    assert 0 < sum(untouched) < len(untouched)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="cutout"):
        AugmentConfig(kind="cutout")
    with pytest.raises(ValueError, match="alpha"):
        AugmentConfig(kind="mixup", alpha=0.0)
    with pytest.raises(ValueError, match="prob"):
        AugmentConfig(kind="mixup", prob=1.5)


@pytest.mark.parametrize("config", [AugmentConfig(), AugmentConfig("cutmix", alpha=0.4, prob=0.5),
                                    AugmentConfig("specaugment", freq_masks=3, time_mask_width=5)])
def test_save_load_augment_config_round_trip(tmp_path, config):
    path = save_augment_config(config, tmp_path / "sub" / "best.json",
                               extra={"chosen_by": "val_map_at_3", "score": np.float64(0.8),
                                      "std": float("nan"), "seeds": np.arange(2)})
    assert load_augment_config(path) == config
    extra = json.loads(path.read_text())["extra"]
    assert extra == {"chosen_by": "val_map_at_3", "score": 0.8, "std": None, "seeds": [0, 1]}
    assert not list(path.parent.glob("*.tmp"))  # the atomic write left no temporary file


def test_load_augment_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="04_cutmix"):
        load_augment_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "cutmix", "strength": 2}')
    with pytest.raises(ValueError, match="strength"):
        load_augment_config(bad)
    bad.write_text('{"kind": "rotate"}')
    with pytest.raises(ValueError, match="rotate"):
        load_augment_config(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        load_augment_config(bad)
    bad.write_text('{"kind": "mixup"}')  # missing fields take their defaults
    assert load_augment_config(bad) == AugmentConfig("mixup")


def test_describe_says_what_the_configuration_does():
    from helpers.augment import StaticCutMix

    assert AugmentConfig().describe() == "no augmentation"
    assert AugmentConfig("cutmix", alpha=0.5, prob=0.0).describe() == "no augmentation"
    assert AugmentConfig("cutmix", alpha=1.0, prob=0.5).describe() == "CutMix on 50% of the batches, λ ~ Beta(1, 1)"
    assert AugmentConfig("mixup", alpha=0.2).describe() == "mixup on every batch, λ ~ Beta(0.2, 0.2)"
    assert AugmentConfig("bandcutmix").describe().startswith("band CutMix on every batch")
    text = AugmentConfig("specaugment", freq_mask_width=8, time_mask_width=2).describe()
    assert "up to 8 mel bands" in text and "up to 2 frames" in text
    assert StaticCutMix(3, 1.0).describe().startswith("3 CutMix copies")
    assert "of the 4 versions" in StaticCutMix(3, 1.0).describe()
