"""Helpers for the instrument-classification notebooks.

One module per concern (paths, data, download, demo, soundfonts, acoustics, audio, features,
cache, files, splits, models, training, parallel, evaluation, stats, protocol, experiment,
augment, augment_audio, perturb, tuning, tune_command, pruning, tflite, cam, ablation,
pretrained, transfer, calibration, plots, progress, results, report, predict, chain, book, cli,
environment; the subpackage sources: sample libraries as data), standing in the layers of
:mod:`helpers.layers`: a module imports only its own layer and those below, and no modules
import each other in a circle. Importing the package is cheap: nothing heavy
happens here except choosing Keras 2 and a hook that keeps TensorFlow's native start-up notices
out of notebooks and command output.

TF-MOT pruning only works with Keras 2, so every model is built with ``tf_keras`` and
``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is imported for the first time.
This is the one place that sets it.

**The same numbers on every machine of this kind.** Left alone, the numeric kernels choose their
code from the CPU they run on, so the same commit trains to different weights on two machines:
TensorFlow turns its oneDNN operations on only where the CPU has AVX-512 VNNI or BF16 (or AMX),
oneDNN then picks its kernels by instruction set, OpenBLAS picks its kernel by CPU, and numpy
dispatches ``log10`` and friends to AVX-512 where it exists. :data:`PINNED` fixes each choice to
what every x86-64 machine of ours has (AVX2): oneDNN on, at most AVX2; OpenBLAS's Haswell kernel;
numpy's AVX2 loops. They must be set before TensorFlow and numpy are first imported, which is why
they are here (a notebook imports ``helpers`` in its first code cell; worker processes inherit
them). A variable already set in the environment is left as it is. ``tests/test_reproducibility.py``
pins a short training's weights; ``python -m helpers environment`` prints what a run used.
"""

import contextlib
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep notebooks readable (C++ log spam from tf.data)


def _numpy_at_least(major: int, minor: int) -> bool:
    """numpy's installed version, read without importing it (names of its CPU features vary)."""
    from importlib import metadata

    try:
        parts = metadata.version("numpy").split(".")
        return (int(parts[0]), int(parts[1])) >= (major, minor)
    except (metadata.PackageNotFoundError, ValueError, IndexError):
        return False


PINNED: dict[str, str] = {
    "TF_ENABLE_ONEDNN_OPTS": "1",  # oneDNN on whatever the CPU ...
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # ... with the kernels every x86-64 machine of ours runs
    "OPENBLAS_CORETYPE": "Haswell",  # one OpenBLAS kernel (AVX2), not one per CPU
}
if _numpy_at_least(2, 4):  # numpy 2.4 names its dispatch targets X86_V3 (AVX2), X86_V4, ...
    PINNED["NPY_DISABLE_CPU_FEATURES"] = "X86_V4 AVX512_ICL AVX512_SPR"
for _name, _value in PINNED.items():
    os.environ.setdefault(_name, _value)

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
