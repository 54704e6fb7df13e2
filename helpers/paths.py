"""Where things live: one place for every folder the project reads or writes.

Inputs (datasets, the feature cache) live under ``data/``. Outputs of a run (figures, results,
models, executed notebooks) live under the output root, which is the repository unless
``HELPERS_OUTPUT_DIR`` points elsewhere (the test suite and the benchmarks use that); a smoke
run without it writes to ``build/smoke/`` (:func:`use_profile_output`), so it never overwrites the
committed figures.
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


_SET_FOR_PROFILE: str | None = None  # the HELPERS_OUTPUT_DIR that use_profile_output set, if any


def use_profile_output(profile: str) -> Path | None:
    """Send a run with a profile other than ``"full"`` to ``<repo>/build/<profile>/`` (git-ignored)
    unless the user's ``HELPERS_OUTPUT_DIR`` names a place, so that a quick smoke run never
    replaces the full run's figures, results and models. Sets ``HELPERS_OUTPUT_DIR`` for this
    process and the processes it starts; a later ``"full"`` run in the same process (a kernel
    where a student switched back) takes it away again. Returns the folder a smoke run writes
    to, or None when the output root is the repository or the user's.
    Used in: helpers.chain (the chain and every notebook's ``apply_profile``).
    """
    global _SET_FOR_PROFILE
    current = os.environ.get("HELPERS_OUTPUT_DIR")
    ours = current is not None and current == _SET_FOR_PROFILE
    if current is not None and not ours:
        return None  # the user's choice wins
    if profile == "full":
        if ours:
            del os.environ["HELPERS_OUTPUT_DIR"]
            _SET_FOR_PROFILE = None
        return None
    folder = REPO_ROOT / "build" / profile
    os.environ["HELPERS_OUTPUT_DIR"] = _SET_FOR_PROFILE = str(folder)
    return folder


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
