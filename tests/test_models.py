"""helpers.models: CNN shapes and layer-name contract, parameter counts, baselines, bundle."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

import helpers  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.models import (
    LOGMEL_CNN,
    SEED_CNN,
    CNNConfig,
    build_cnn,
    classical_models,
    count_params,
    load_bundle,
    save_bundle,
)


def _probs(model, X):
    return model(X, training=False).numpy()


@pytest.mark.parametrize("config, shape", [(SEED_CNN, (20, 44, 1)), (LOGMEL_CNN, (64, 44, 1))])
def test_output_shape_and_softmax(config, shape):
    model = build_cnn(shape, 5, config)
    X = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
    probs = _probs(model, X)
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.output_shape == (None, 5)
    assert model.loss == "categorical_crossentropy"


def test_layer_name_contract():
    model = build_cnn((20, 44, 1), 4, SEED_CNN)
    names = [layer.name for layer in model.layers]
    assert [n for n in names if n.startswith("conv") and n[4:].isdigit()] == ["conv1", "conv2",
                                                                              "conv3"]
    assert [n for n in names if n.startswith("dense") and n[5:].isdigit()] == ["dense1", "dense2",
                                                                               "dense3"]
    assert names[-2:] == ["logits", "probs"]
    assert model.get_layer("logits").get_config()["activation"] == "linear"
    assert model.get_layer("probs").get_config()["activation"] == "softmax"
    assert model.output.name.startswith("probs")
    assert type(model.get_layer("conv1")).__name__ == "Conv2D"


def test_param_count_of_tiny_config_matches_hand_count():
    # input 8x6x1 -> conv1 (4 filters, 3x3) -> pool -> 4x3x4 -> flatten 48 -> dense1 (5) -> 3
    config = CNNConfig(conv_filters=(4,), kernel_sizes=(3,), dense_units=(5,), dropout=0.0)
    model = build_cnn((8, 6, 1), 3, config)
    conv = 3 * 3 * 1 * 4 + 4
    dense = 48 * 5 + 5
    logits = 5 * 3 + 3
    assert count_params(model) == conv + dense + logits == 303
    # batch norm adds 4 parameters per channel (gamma, beta, moving mean and variance)
    with_bn = build_cnn((8, 6, 1), 3, CNNConfig((4,), (3,), (5,), dropout=0.0, batch_norm=True))
    assert count_params(with_bn) == 303 + 4 * 4


@pytest.mark.parametrize("n_conv", range(4))
def test_ablation_grid_builds(n_conv):
    for n_dense in range(4):
        for global_pool in (False, True):
            config = CNNConfig(conv_filters=(2, 3, 4)[:n_conv], kernel_sizes=(3, 3, 3)[:n_conv],
                               dense_units=(6, 5, 4)[:n_dense], batch_norm=True,
                               global_pool=global_pool)
            model = build_cnn((5, 3, 1), 3, config)  # tiny: pooling must stop at size 1
            names = {layer.name for layer in model.layers}
            assert {f"conv{i}" for i in range(1, n_conv + 1)} <= names
            assert {f"dense{j}" for j in range(1, n_dense + 1)} <= names
            assert f"conv{n_conv + 1}" not in names and f"dense{n_dense + 1}" not in names
            assert {"logits", "probs"} <= names
            assert model.output_shape == (None, 3)


def test_config_validation():
    with pytest.raises(ValueError, match="same length"):
        CNNConfig(conv_filters=(8, 16), kernel_sizes=(3,), dense_units=())
    with pytest.raises(ValueError, match="dropout"):
        CNNConfig(conv_filters=(), kernel_sizes=(), dense_units=(), dropout=1.0)


def test_reference_configs_are_as_documented():
    assert len(SEED_CNN.conv_filters) == 3 and len(SEED_CNN.dense_units) == 3
    assert SEED_CNN.dropout == 0.2 and not SEED_CNN.batch_norm
    assert not LOGMEL_CNN.global_pool and len(LOGMEL_CNN.dense_units) == 1
    seed = count_params(build_cnn((20, 44, 1), 5, SEED_CNN))
    logmel = count_params(build_cnn((64, 44, 1), 5, LOGMEL_CNN))
    assert logmel < seed


def test_classical_models_fit_and_predict_proba():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (100, 6)), rng.normal(3, 1, (100, 6))])
    y = np.repeat([0, 1], 100)
    models = classical_models(seed=0)
    assert len(models) == 8
    for name, model in models.items():
        model.fit(X, y)
        probs = model.predict_proba(X)
        assert probs.shape == (200, 2), name
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, err_msg=name)
        assert np.mean(model.predict(X) == y) > 0.9, name


@dataclass(frozen=True)
class _ToyFeatures:
    kind: str = "mfcc"
    n_mfcc: int = 20
    fmax: float | None = None
    sizes: tuple[int, ...] = (1, 2)


def test_bundle_round_trip(tmp_path):
    model = build_cnn((20, 12, 1), 3, CNNConfig((4,), (3,), (8,), batch_norm=True))
    X = np.random.default_rng(1).normal(size=(4, 20, 12, 1)).astype(np.float32)
    mean, std = np.full((20, 1, 1), 0.5), np.full((20, 1, 1), 2.0)
    config = _ToyFeatures(n_mfcc=20)
    target = tmp_path / "models" / "seed"
    save_bundle(target, model, ["a", "b", "c"], config, mean, std,
                extra={"map_at_3": np.float64(0.75), "epochs": 3})
    # saving again replaces the old bundle atomically and leaves no temporary folders
    out = save_bundle(target, model, ["a", "b", "c"], config, mean, std,
                      extra={"map_at_3": np.float64(0.75), "epochs": 3})
    assert out == target
    assert sorted(p.name for p in target.parent.iterdir()) == ["seed"]
    assert json.loads((target / "meta.json").read_text())["classes"] == ["a", "b", "c"]

    bundle = load_bundle(target, config_type=_ToyFeatures)
    assert bundle.classes == ("a", "b", "c")
    assert bundle.feature_config == config
    np.testing.assert_allclose(bundle.mean, mean)
    np.testing.assert_allclose(bundle.std, std)
    assert bundle.extra == {"map_at_3": 0.75, "epochs": 3}
    np.testing.assert_allclose(_probs(bundle.model, X), _probs(model, X), rtol=1e-6, atol=1e-7)
    assert [layer.name for layer in bundle.model.layers] == [layer.name for layer in model.layers]


def test_missing_bundle_file_names_folder(tmp_path):
    folder = tmp_path / "broken_bundle"
    folder.mkdir()
    (folder / "meta.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="broken_bundle") as info:
        load_bundle(folder, config_type=_ToyFeatures)
    assert "model.keras" in str(info.value) and "normalizer.npz" in str(info.value)


def _detector(n_classes=3, dim=8, seed=0):
    from helpers.calibration import OODDetector

    rng = np.random.default_rng(seed)
    y = np.arange(60) % n_classes
    X = rng.normal(size=(60, dim)) + y[:, None]
    detector = OODDetector.fit("mahalanobis", X, y, fitted_on="60 toy training clips")
    return detector.with_threshold(detector.score(X), accept=0.9), X


def test_bundle_carries_temperature_and_ood_detector(tmp_path):
    model = build_cnn((20, 12, 1), 3, CNNConfig((4,), (3,), (8,)))
    detector, X = _detector()
    target = tmp_path / "calibrated"
    save_bundle(target, model, ["a", "b", "c"], _ToyFeatures(), np.zeros(20), np.ones(20),
                calibration={"temperature": np.float64(1.7), "fitted_on": "val clips"},
                ood=detector)
    meta = json.loads((target / "meta.json").read_text())
    assert meta["kind"] == "cnn"
    assert meta["calibration"] == {"temperature": 1.7, "fitted_on": "val clips"}
    assert meta["ood"] == {"method": "mahalanobis", "threshold": detector.threshold,
                           "accept": 0.9, "fitted_on": "60 toy training clips", "file": "ood.npz"}
    with np.load(target / "ood.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["class_means", "precision"]
    bundle = load_bundle(target, config_type=_ToyFeatures)
    assert bundle.calibration == {"temperature": 1.7, "fitted_on": "val clips"}
    assert bundle.ood.threshold == detector.threshold and bundle.kind == "cnn"
    np.testing.assert_allclose(bundle.ood.score(X), detector.score(X))


def test_bundle_without_calibration_and_an_old_bundle_load_as_before(tmp_path):
    model = build_cnn((20, 12, 1), 3, CNNConfig((4,), (3,), (8,)))
    plain = save_bundle(tmp_path / "plain", model, ["a", "b", "c"], _ToyFeatures(),
                        np.zeros(20), np.ones(20))
    assert sorted(p.name for p in plain.iterdir()) == ["meta.json", "model.keras",
                                                       "normalizer.npz"]
    meta = json.loads((plain / "meta.json").read_text())
    assert "calibration" not in meta and "ood" not in meta
    # a bundle written before these fields existed: no "kind", no calibration, no detector
    del meta["kind"]
    (plain / "meta.json").write_text(json.dumps(meta))
    bundle = load_bundle(plain, config_type=_ToyFeatures)
    assert bundle.calibration is None and bundle.ood is None and bundle.kind == "cnn"


def test_bad_calibration_or_detector_is_refused_before_writing(tmp_path):
    from helpers.calibration import OODDetector

    model = build_cnn((20, 12, 1), 3, CNNConfig((4,), (3,), (8,)))
    args = (model, ["a", "b", "c"], _ToyFeatures(), np.zeros(20), np.ones(20))
    with pytest.raises(ValueError, match="temperature"):
        save_bundle(tmp_path / "b1", *args, calibration={"temperature": -1.0})
    with pytest.raises(ValueError, match="no threshold"):
        save_bundle(tmp_path / "b2", *args, ood=OODDetector("max_probability"))
    with pytest.raises(ValueError, match="2 class means"):
        save_bundle(tmp_path / "b3", *args, ood=_detector(n_classes=2)[0])
    assert not list(tmp_path.iterdir())
    other = save_bundle(tmp_path / "other", *args)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "kind": "transfer"}))
    with pytest.raises(ValueError, match="kind 'transfer'"):
        load_bundle(other, config_type=_ToyFeatures)


def test_small_training_sets_still_fit_the_calibrated_svm_and_the_mlp():
    from helpers.models import classical_models

    rng = np.random.default_rng(0)
    y = np.array([0] * 2 + [1] * 6 + [2] * 6)  # class 0: two clips, fewer than the 5 folds asked
    X = rng.normal(size=(len(y), 4)) + y[:, None]
    for name in ("SVM (RBF)", "MLP"):
        model = classical_models(0)[name].fit(X, y)
        assert model.predict_proba(X).shape == (len(y), 3)
    with pytest.raises(ValueError, match="at least 2 training clips of every class"):
        classical_models(0)["SVM (RBF)"].fit(X[1:], y[1:])
