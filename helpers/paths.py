"""Where things live: one place for every folder the project reads or writes.

Inputs (datasets, the feature cache) live under ``data/``. Outputs of a run (figures, results,
models, executed notebooks) live under the output root, which is the repository unless
``HELPERS_OUTPUT_DIR`` points elsewhere (the test suite and the benchmarks use that); the chain's
smoke run without it writes to ``build/smoke/`` (:func:`profile_output_dir`, which
:func:`helpers.chain.profile_output` sets for the chain and its kernels), so it never overwrites
the committed figures.
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


def profile_output_dir(profile: str) -> Path | None:
    """The output root of a chain run of ``profile``: ``<repo>/build/<profile>/`` (git-ignored)
    for any profile but ``"full"``, so that a quick smoke run never replaces the full run's
    figures, results and models; None (the output root stays :func:`output_dir`) for ``"full"``
    or when ``HELPERS_OUTPUT_DIR`` names a place (the user's choice wins). Sets nothing.
    Used in: :func:`helpers.chain.profile_output`.
    """
    if profile == "full" or "HELPERS_OUTPUT_DIR" in os.environ:
        return None
    return REPO_ROOT / "build" / profile


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
