"""Progress: in place on a terminal and in Jupyter, a few plain lines in a log, nothing when off."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import progress as progress_module
from helpers.progress import LineWriter, progress, progress_mode

ROOT = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_forced_mode(monkeypatch):
    monkeypatch.delenv("HELPERS_PROGRESS", raising=False)


def test_mode_follows_the_stream(monkeypatch):
    assert progress_mode(Terminal()) == "bar"
    assert progress_mode(io.StringIO()) == "log"
    # ipykernel's OutStream is no TTY, but Jupyter redraws carriage returns in place
    kernel_stream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})()
    assert progress_mode(kernel_stream) == "bar"
    monkeypatch.setenv("HELPERS_PROGRESS", "off")
    assert progress_mode(Terminal()) == "off"
    monkeypatch.setenv("HELPERS_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="bar, log, off"):
        progress_mode(io.StringIO())


def test_a_log_gets_a_few_whole_lines_not_carriage_return_frames():
    log = io.StringIO()
    assert list(progress(range(50_000), desc="features", unit="clip", file=log)) == list(range(50_000))
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) <= 3, lines  # the start and the end: the loop took far less than LOG_SECONDS
    assert lines[0].startswith("features:") and "50000/50000" in lines[-1]


def test_a_slow_loop_prints_one_line_per_interval(monkeypatch):
    """12 items, 0.05 s each on a clock the test moves (no sleeping, so no timing luck): with
    a line at most every 0.2 s, the log gets the first line, one per 0.2 s and the last."""
    import tqdm.std

    now = [1000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])
    monkeypatch.setattr(progress_module, "LOG_SECONDS", 0.2)
    log = io.StringIO()
    for _ in progress(range(12), desc="slow", file=log):
        now[0] += 0.05
    lines = log.getvalue().splitlines()
    # the first line, then the first item at least 0.2 s after the last line (5: 0.25 s,
    # 10: 0.5 s), then the final line
    assert [re.search(r"\d+/12", line).group() for line in lines] == ["0/12", "5/12", "10/12", "12/12"]
    assert "\r" not in log.getvalue()


def test_manual_bar_postfix_waits_for_the_next_line():
    log = io.StringIO()
    with progress(total=40, desc="ablation", unit="run", file=log) as bar:
        for i in range(40):
            bar.set_postfix_str(f"variant {i}")
            bar.update()
    lines = log.getvalue().splitlines()
    assert len(lines) <= 3 and "40/40" in lines[-1] and "variant 39" in lines[-1]


def test_terminal_bar_updates_in_place():
    tty = Terminal()
    for _ in progress(range(3), desc="tty", file=tty, mininterval=0):
        pass
    assert tty.getvalue().count("\r") >= 3 and tty.getvalue().count("\n") == 1


def test_off_and_disable_print_nothing(monkeypatch):
    log = io.StringIO()
    assert sum(progress(range(10), file=log, disable=True)) == 45
    assert log.getvalue() == ""
    monkeypatch.setenv("HELPERS_PROGRESS", "off")
    terminal = Terminal()
    assert sum(progress(range(10), file=terminal)) == 45
    assert terminal.getvalue() == ""


def test_line_writer_drops_blank_frames_and_repeats():
    out = io.StringIO()
    writer = LineWriter(out)
    for frame in ("\rstep 1   ", "\rstep 1", "\n", "\r", "\rstep 2"):
        writer.write(frame)
    assert out.getvalue() == "step 1\nstep 2\n"


def test_a_piped_command_logs_lines():
    """End to end: a helper that loops, run with stderr going to a pipe as in CI."""
    code = ("from helpers.progress import progress\n"
            "for _ in progress(range(100000), desc='clips'): pass\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "HELPERS_PROGRESS": ""})
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "100000/100000" in done.stderr
    assert len(done.stderr.splitlines()) <= 3

