"""Helpers for the instrument-classification notebooks.

One module per concern (paths, data, download, demo, soundfonts, acoustics, audio, features,
cache, files, splits, models, training, parallel, evaluation, stats, protocol, experiment,
augment, augment_audio, perturb, tuning, tune_command, pruning, cam, ablation, pretrained,
transfer, calibration, plots, progress, results, report, predict, chain, book, cli). Importing the package is cheap: nothing heavy
happens here except choosing Keras 2 and a hook that keeps TensorFlow's native start-up notices
out of notebooks and command output.

TF-MOT pruning only works with Keras 2, so every model is built with ``tf_keras`` and
``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is imported for the first time.
This is the one place that sets it.
"""

import contextlib
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep notebooks readable (C++ log spam from tf.data)

__version__ = "0.1.0"


@contextlib.contextmanager
def native_notices_hidden():
    """Hide what native code writes to file descriptor 2 inside the block: TensorFlow's start-up
    INFO lines (oneDNN, CUDA) and TFLite's XNNPACK notice, which ignore ``TF_CPP_MIN_LOG_LEVEL``.
    If the block raises, what was written is shown after all. Keep the block small: Python's
    own stderr goes to the same descriptor. Used in: the import hook below (TensorFlow's first
    import), helpers/predict.py (creating a TFLite interpreter), helpers/pruning.py (the TFLite
    converter)."""
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


class _QuietTensorFlowImport:
    """A one-shot import hook: the first ``import tensorflow`` of the process (wherever it
    happens, often deep inside a helper) runs inside :func:`native_notices_hidden`, so its
    start-up INFO lines do not land in whichever notebook cell or command first needed
    TensorFlow. Everything else about the import is unchanged."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        import importlib.util

        sys.meta_path.remove(self)  # once; the real finders answer from here on
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _HiddenNotices(spec.loader)
        return spec


class _HiddenNotices:
    """Runs a module loader with :func:`native_notices_hidden` (see :class:`_QuietTensorFlowImport`)."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with native_notices_hidden():
            self.loader.exec_module(module)

    def __getattr__(self, name):  # everything else (resources, source, ...) from the real loader
        return getattr(self.loader, name)


if "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietTensorFlowImport())
