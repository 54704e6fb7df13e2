"""Progress bars that read well on a terminal, in Jupyter and in a log file.

Every long loop of the package goes through :func:`progress`, a thin layer over tqdm that picks
one of three modes:

``bar``  in-place tqdm bar: on a terminal (stderr is a TTY) and inside a Jupyter kernel, whose
         front end redraws carriage returns in place (``helpers.book`` folds them into the last
         frame when it renders an executed notebook).
``log``  everywhere else (CI, ``make run > log``, a pipe): a plain line when the loop starts,
         then at most one every :data:`LOG_SECONDS`, and a final line, each ending in a newline,
         instead of thousands of carriage-return frames.
``off``  nothing.

``HELPERS_PROGRESS=bar|log|off`` forces a mode. Used in: helpers.parallel (the per-clip work of
helpers.features, helpers.perturb and helpers.augment_audio), helpers.demo, helpers.pruning,
helpers.predict, helpers.pretrained, helpers.chain, helpers.download, helpers.experiment.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

from tqdm.std import tqdm

LOG_SECONDS = 30.0  # at most one progress line per this many seconds in ``log`` mode
MODES = ("bar", "log", "off")


def _isatty(stream: IO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _in_jupyter(stream: IO) -> bool:
    """Is ``stream`` a Jupyter kernel's output stream (ipykernel's ``OutStream``)?"""
    return type(stream).__module__.startswith("ipykernel")


def progress_mode(stream: IO | None = None) -> str:
    """``'bar'``, ``'log'`` or ``'off'`` for progress written to ``stream`` (default stderr)."""
    forced = os.environ.get("HELPERS_PROGRESS", "").strip().lower()
    if forced in MODES:
        return forced
    if forced:
        raise ValueError(f"HELPERS_PROGRESS={forced!r}: choose one of {', '.join(MODES)}")
    stream = stream if stream is not None else sys.stderr
    return "bar" if _isatty(stream) or _in_jupyter(stream) else "log"


class LineWriter:
    """A file for tqdm that turns each in-place frame (``'\\r' + text``) into one log line."""

    def __init__(self, stream: IO) -> None:
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> int:
        line = text.replace("\r", "").rstrip()
        if line and line != self.last:
            self.stream.write(line + "\n")
            self.last = line
        return len(text)

    def flush(self) -> None:
        getattr(self.stream, "flush", lambda: None)()

    @property
    def encoding(self) -> str | None:
        return getattr(self.stream, "encoding", None)


def log_kwargs(stream: IO | None = None) -> dict[str, Any]:
    """tqdm keyword arguments of the ``log`` mode, writing lines to ``stream`` (default stderr).

    Also what :mod:`helpers.chain` hands papermill for its own per-cell bar.
    """
    stream = stream if stream is not None else sys.stderr
    return {"file": LineWriter(stream), "mininterval": LOG_SECONDS, "maxinterval": LOG_SECONDS,
            "ascii": True}


class LogTqdm(tqdm):
    """tqdm for the ``log`` mode: a new description or postfix waits for the next timed line
    (plain tqdm redraws at once, which in a log means one extra line per change)."""

    def set_description(self, desc=None, refresh=False):
        super().set_description(desc, refresh=refresh)

    def set_description_str(self, desc=None, refresh=False):
        super().set_description_str(desc, refresh=refresh)

    def set_postfix(self, ordered_dict=None, refresh=False, **kwargs):
        super().set_postfix(ordered_dict, refresh=refresh, **kwargs)

    def set_postfix_str(self, s="", refresh=False):
        super().set_postfix_str(s, refresh=refresh)


def progress(iterable=None, *, file: IO | None = None, disable: bool = False, **kwargs) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one: ``progress(total=n)`` and ``.update()``).

    Takes tqdm's keyword arguments (``desc``, ``total``, ``unit``, ...); the mode
    (:func:`progress_mode`) decides how it is drawn. Returns the tqdm object, so it iterates,
    works as a context manager and has ``update``, ``set_postfix_str`` and ``close``.
    """
    stream = file if file is not None else sys.stderr
    mode = progress_mode(stream)
    if mode == "log":
        return LogTqdm(iterable, disable=disable, **{**log_kwargs(stream), **kwargs})
    return tqdm(iterable, file=stream, disable=disable or mode == "off", **kwargs)
