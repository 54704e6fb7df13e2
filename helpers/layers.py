"""The layers of ``helpers/``, from the ground up: where each module stands.

A module imports modules of its own layer or of a layer below, never one above, and no modules
import each other in a circle (imports at a module's top and inside its functions alike, type
hints included). A reader can start at the bottom and meet each module after everything it
uses. ``tests/test_layers.py`` reads every module's imports and holds them to this table; a new
module must be given a layer here, or that test fails.

Names are modules under ``helpers.`` (``"__init__"`` is the package itself, ``"sources"`` the
subpackage's ``__init__``).
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("foundation", "tools that know nothing of instruments: paths, files, progress, figures, "
     "caches, process pools, this table",
     ("__init__", "layers", "paths", "files", "progress", "plots", "cache", "parallel",
      "environment")),
    ("data", "the datasets and their audio: reading, downloading, rendering the demo",
     ("audio", "data", "download", "sources", "sources.debian", "sources.sf2", "sources.gus",
      "sources.libraries", "sources.dedup", "soundfonts", "acoustics", "demo")),
    ("features", "what a network sees, and honest splits",
     ("features", "splits")),
    ("models", "networks, how they are trained and fed, and what a saved model carries",
     ("models", "training", "augment", "augment_audio", "calibration", "tflite")),
    ("evaluation", "scoring, comparing, and the protocol every chapter follows",
     ("evaluation", "stats", "experiment", "protocol", "unknowns")),
    ("chapters", "one topic of a notebook each",
     ("tuning", "pruning", "cam", "ablation", "perturb", "pretrained", "pretrained_aisfx",
      "transfer")),
    ("deployment", "a saved model put to work",
     ("predict",)),
    ("course", "the machinery that runs and reports the series",
     ("results", "report", "chain", "book", "tune_command", "cli", "__main__")),
)


def layer_of() -> dict[str, int]:
    """``{module: layer index}`` (0 = the ground), module names as in :data:`LAYERS`."""
    return {module: index for index, (_, _, modules) in enumerate(LAYERS) for module in modules}
