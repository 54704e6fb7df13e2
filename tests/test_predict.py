"""`python -m helpers predict`: CSV for every readable file, clear errors for the others."""

import csv
import io
import subprocess
import sys

import numpy as np
import pytest

from helpers.features import FeatureConfig
from helpers.predict import HEADER, predict_paths, top_k

CLASSES = ("Cello", "Flute", "Snare_drum")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A small (untrained) CNN saved as a bundle: enough to test the plumbing."""
    from helpers.models import CNNConfig, build_cnn, save_bundle
    from helpers.training import set_seed

    cfg = FeatureConfig(n_mels=16)
    set_seed(0)
    model = build_cnn(cfg.input_shape, len(CLASSES), CNNConfig((4,), (3,), (8,)))
    path = tmp_path_factory.mktemp("models") / "tiny"
    return save_bundle(path, model, CLASSES, cfg, np.zeros(16, np.float32), np.ones(16, np.float32))


def _rows(text):
    return list(csv.reader(io.StringIO(text)))


def test_folder_and_files_give_one_row_each_and_bad_files_are_reported(bundle, tmp_path, write_tone):
    write_tone("clips/a.wav", seconds=0.4)
    write_tone("clips/sub/b.flac", seconds=7.5, sr=44100, channels=2)
    write_tone("clips/sub/c.ogg", seconds=1.2, subtype="VORBIS")
    (tmp_path / "clips" / "broken.wav").write_bytes(b"RIFF nonsense")
    single = write_tone("single.wav", seconds=2.0)
    out, err = io.StringIO(), io.StringIO()
    status = predict_paths([tmp_path / "clips", single, tmp_path / "missing.wav"], model=bundle,
                           out=out, err=err)
    rows = _rows(out.getvalue())
    assert tuple(rows[0]) == HEADER
    assert sorted(r[0].split("/")[-1] for r in rows[1:]) == ["a.wav", "b.flac", "c.ogg", "single.wav"]
    for r in rows[1:]:
        assert set(r[1::2][1:]) <= set(CLASSES) and len(set(r[1:6:2])) == 3
        probs = [float(p) for p in r[2::2]]
        assert probs == sorted(probs, reverse=True) and 0.99 <= sum(probs) <= 1.01
    assert status == 1
    assert "broken.wav: cannot decode" in err.getvalue()
    assert "missing.wav: no such file or folder" in err.getvalue()


def test_all_good_files_exit_zero_through_the_command_line(bundle, write_tone):
    path = write_tone("ok.wav", seconds=1.0)
    done = subprocess.run([sys.executable, "-m", "helpers", "predict", "--model", str(bundle), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert len(rows) == 2 and rows[1][0] == str(path)


def test_missing_model_is_a_clear_error(tmp_path, write_tone):
    path = write_tone("ok.wav")
    done = subprocess.run([sys.executable, "-m", "helpers", "predict", "--model",
                           str(tmp_path / "nope"), str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "model not found" in done.stderr


def test_top_k_orders_by_probability():
    assert top_k(np.array([0.1, 0.6, 0.3]), CLASSES) == ["Flute", "0.6000", "Snare_drum", "0.3000",
                                                         "Cello", "0.1000"]
