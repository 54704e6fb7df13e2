"""Where things live: one place for every folder the project reads or writes.

Inputs (datasets, the feature cache) live under ``data/``. Outputs of a run (figures, results,
models, executed notebooks) live under the output root, which is the repository unless
``HELPERS_OUTPUT_DIR`` points elsewhere (the test suite uses that so a smoke run never
overwrites the committed figures).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Root of datasets and caches (``HELPERS_DATA_DIR`` or ``<repo>/data``)."""
    return Path(os.environ.get("HELPERS_DATA_DIR", REPO_ROOT / "data"))


def cache_dir() -> Path:
    """The one feature cache (``HELPERS_CACHE_DIR`` or ``data/cache``)."""
    return Path(os.environ.get("HELPERS_CACHE_DIR", data_dir() / "cache"))


def output_dir() -> Path:
    """Root for what a run writes (``HELPERS_OUTPUT_DIR`` or the repository)."""
    return Path(os.environ.get("HELPERS_OUTPUT_DIR", REPO_ROOT))


def figures_dir() -> Path:
    return output_dir() / "figures"


def results_dir() -> Path:
    return output_dir() / "results"


def models_dir() -> Path:
    return output_dir() / "models"


def executed_dir() -> Path:
    """Executed copies of the notebooks (git-ignored)."""
    return output_dir() / "executed"


def book_dir() -> Path:
    """The web book: generated sources and the HTML site (``python -m helpers book``)."""
    return output_dir() / "build" / "book"


def notebooks_dir() -> Path:
    return REPO_ROOT / "notebooks"
