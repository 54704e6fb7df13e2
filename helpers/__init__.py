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

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep notebooks readable (C++ log spam from tf.data)

__version__ = "0.1.0"
