"""Helpers for the instrument-classification notebooks.

One module per concern (paths, data, download, demo, soundfonts, acoustics, audio, features,
cache, files, splits, models, training, parallel, evaluation, stats, protocol, experiment,
augment, augment_audio, perturb, tuning, tune_command, pruning, cam, ablation, pretrained,
transfer, calibration, plots, progress, results, report, predict, chain, book, cli). Importing the package is cheap: nothing heavy
happens here except choosing Keras 2.

TF-MOT pruning only works with Keras 2, so every model is built with ``tf_keras`` and
``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is imported for the first time.
This is the one place that sets it.
"""

import contextlib
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep notebooks readable (C++ log spam from tf.data)

__version__ = "0.1.0"


@contextlib.contextmanager
def native_notices_hidden():
    """Hide what native code writes to file descriptor 2 inside the block: TensorFlow's start-up
    INFO lines (oneDNN, CUDA) and TFLite's XNNPACK notice, which ignore ``TF_CPP_MIN_LOG_LEVEL``.
    If the block raises, what was written is shown after all. Keep the block small: Python's
    own stderr goes to the same descriptor. Used in: helpers/parallel.py (worker start),
    helpers/cli.py, helpers/predict.py (TFLite)."""
    import tempfile

    saved = os.dup(2)
    with tempfile.TemporaryFile() as notices:
        os.dup2(notices.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            notices.seek(0)
            os.write(2, notices.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
