"""The web book: its sources from a (fake) run, then the real book checked as a reader would.

The browser check builds the book from the first smoke run (fixture ``smoke_runs``, shared with
tests/test_notebooks.py, so the chain is not run again), serves it on 127.0.0.1 and loads every
page in headless Chromium: no console errors, nothing loaded from outside the site, every
image decoded, every audio player ready, every internal link resolving, chapter navigation,
search answering. A screenshot of each page goes to
``build/book/screenshots/`` beside the site, with ``browser_check.json`` (what each page showed).
``BOOK_TEST_RUN=/path/to/output/root`` checks the book of an earlier run instead (no chain).
Without Chromium the browser tests skip and say how to install it (under CI they fail).
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import numpy as np
import pytest
import soundfile as sf

from helpers.book import (
    REPOSITORY_URL,
    BookError,
    build_book,
    executed_chapters,
    fold_carriage_returns,
    landing_page,
    launch_links,
)
from helpers.chain import chain_notebooks
from helpers.paths import executed_dir, figures_dir, results_dir

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [p.stem for p in chain_notebooks()]
PAGES = ["index", *CHAPTERS, "search"]
INSTALL_HINT = ("headless Chromium is not installed: `apt-get install -y chromium chromium-driver` "
                "(Debian/Ubuntu, as root; .ci/run does this), then rerun `make test`")


# --- the sources, from a fake run (no chain, no browser) ------------------------------------

def _wav_data_uri() -> str:
    buf = io.BytesIO()
    sf.write(buf, (0.1 * np.sin(np.arange(2205) / 5)).astype(np.float32), 22050, format="WAV")
    return "data:audio/x-wav;base64," + base64.b64encode(buf.getvalue()).decode()


def _fake_run(chapters=None, failed: str | None = None) -> None:
    """Executed notebooks under HELPERS_OUTPUT_DIR, one per chapter, with each kind of output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1])
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    executed_dir().mkdir(parents=True)
    for name in chapters if chapters is not None else CHAPTERS:
        nb = nbformat.v4.new_notebook()
        code = nbformat.v4.new_code_cell("run()", execution_count=1, outputs=[
            nbformat.v4.new_output("stream", name="stderr", text="\rclips:   0%| 0/9"),
            nbformat.v4.new_output("stream", name="stderr", text="\rclips: 100%| 9/9\n"),
            nbformat.v4.new_output("display_data", data={
                "image/png": base64.b64encode(png.getvalue()).decode(), "text/plain": "<Figure>"}),
            nbformat.v4.new_output("display_data", data={
                "text/html": f'<audio controls><source src="{_wav_data_uri()}"></audio>',
                "text/plain": "<Audio>"}),
            nbformat.v4.new_output("display_data", data={
                "text/markdown": "| model | accuracy |\n| --- | --- |\n| CNN | 0.5 |",
                "text/plain": "table"}),
        ])
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {name[:2]} · Chapter {name}\n\nWhat you learn."),
                    code, nbformat.v4.new_markdown_cell("## Takeaways\n\n- $x^2$ grows.")]
        nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
        nb.metadata["papermill"] = {"parameters": {"profile": "smoke"}, "exception": name == failed,
                                    "end_time": "2026-01-02T03:04:05+00:00"}
        nbformat.write(nb, executed_dir() / f"{name}.ipynb")
    figures_dir().mkdir(parents=True)
    fig_path = figures_dir() / "03_model_comparison.png"
    fig_path.write_bytes(png.getvalue())
    results_dir().mkdir(parents=True)
    (results_dir() / "summary.json").write_text(json.dumps({"models": {"03/log-mel-cnn": {
        "name": "log-mel CNN", "notebook": "03_baselines", "dataset": "demo", "seeds": 1, "params": 10,
        "in_library": {"accuracy": 0.5, "map_at_3": 0.6}, "cross_library": {"accuracy": 0.4, "map_at_3": 0.5}}}}))
    (results_dir() / "chain_smoke.json").write_text(json.dumps({
        "profile": "smoke", "seconds": {"01_eda": 30.0}, "total_seconds": 30.0}))
    (results_dir() / "bench_chain_full.json").write_text("{}")  # another run's timing: not shown


def test_no_run_says_how_to_make_one():
    with pytest.raises(BookError, match="make run"):
        executed_chapters()


def test_an_incomplete_run_names_what_is_missing():
    _fake_run(CHAPTERS[:2])
    with pytest.raises(BookError, match=rf"lacks {CHAPTERS[2]}.*chain --from {CHAPTERS[2][:2]}"):
        executed_chapters()


def test_a_run_that_stopped_at_an_error_is_refused():
    _fake_run(failed=CHAPTERS[-1])
    with pytest.raises(BookError, match=rf"{CHAPTERS[-1]}.ipynb stopped"):
        executed_chapters()


def test_chapters_come_in_order_with_title_and_profile():
    _fake_run()
    shutil.copy(executed_dir() / f"{CHAPTERS[0]}.ipynb", executed_dir() / "04_old_name.ipynb")
    chapters = executed_chapters()
    assert [c.name for c in chapters] == CHAPTERS
    assert chapters[0].title == f"{CHAPTERS[0][:2]} · Chapter {CHAPTERS[0]}"
    assert {c.profile for c in chapters} == {"smoke"}


def test_carriage_return_frames_fold_into_the_last_one():
    outputs = [{"output_type": "stream", "name": "stderr", "text": "\rbar 0%"},
               {"output_type": "stream", "name": "stderr", "text": "\rbar 50%\rbar 100%\n"},
               {"output_type": "stream", "name": "stdout", "text": "done\r\n"},
               {"output_type": "display_data", "data": {}},
               {"output_type": "stream", "name": "stdout", "text": "after"}]
    folded = fold_carriage_returns(outputs)
    assert [o.get("text") for o in folded] == ["bar 100%\n", "done\n", None, "after"]


def test_launch_links_come_from_one_setting(monkeypatch):
    links = launch_links("04_cutmix")
    assert all(REPOSITORY_URL.split("github.com/")[1] in url for url in links.values())
    monkeypatch.setenv("BOOK_REPOSITORY_URL", "https://github.com/someone/fork/")
    links = launch_links("04_cutmix")
    assert links["Open in Colab"] == ("https://colab.research.google.com/github/someone/fork/blob/"
                                      "main/notebooks/04_cutmix.ipynb")
    assert links["Launch on Binder"].startswith("https://mybinder.org/v2/gh/someone/fork/main?")
    assert links["Source on GitHub"] == "https://github.com/someone/fork/blob/main/notebooks/04_cutmix.ipynb"


def test_the_colab_note_installs_what_the_makefile_installs():
    from helpers.book import Chapter, launch_note

    note = launch_note(Chapter(Path("04_cutmix.ipynb"), "04 · CutMix", "full", ""), "https://github.com/a/b")
    makefile_no_deps = re.search(r"^NODEPS := (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert f"--no-deps {makefile_no_deps}" in note
    assert "git clone --depth 1 https://github.com/a/b course" in note
    assert "make run" in note and ".venv/bin/jupyter lab notebooks/04_cutmix.ipynb" in note


def test_landing_page_is_the_readme_report_of_this_run():
    _fake_run()
    page = landing_page(executed_chapters(), figures_dir(), repo="https://github.com/a/b")
    assert "FSDKaggle2018" in page and "## The two datasets" in page  # from README.md
    assert "| log-mel CNN | 03 | 0.500 | 0.400 |" in page and "last smoke run" in page  # this run's table
    assert "Chain run time (smoke profile): 0.5 min (01_eda 30 s)" in page  # and its time
    assert "(figures/03_model_comparison.png)" in page  # key figures that exist, and only those
    assert "04_robustness" not in page
    assert "](https://github.com/a/b/blob/main/data/README.md)" in page  # no link into the void
    assert all(name in page for name in CHAPTERS)


def test_book_builds_from_a_run_without_executing_it(tmp_path):
    _fake_run()
    before = {p: p.read_bytes() for p in executed_dir().glob("*.ipynb")}
    record = build_book(tmp_path / "book")
    html = Path(record["html"])
    assert {p.stem for p in html.glob("*.html")} >= {"index", "search", *CHAPTERS}
    page = (html / f"{CHAPTERS[3]}.html").read_text()
    assert "<table" in page and "<audio" in page and "<img" in page  # tables render as tables
    assert "clips: 100%| 9/9" in page and "clips:   0%" not in page
    assert "Run it yourself" in page and "colab.research.google.com" in page
    assert "cdn." not in page.lower() and "https://cdn" not in (html / "index.html").read_text()
    assert before == {p: p.read_bytes() for p in executed_dir().glob("*.ipynb")}  # untouched
    assert record["warnings"] == []


def test_cli_book_without_a_run_says_how_to_make_one(tmp_path):
    env = {**os.environ, "HELPERS_OUTPUT_DIR": str(tmp_path / "empty")}
    done = subprocess.run([sys.executable, "-m", "helpers", "book"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "make run" in done.stderr


# --- the real book, in a browser ------------------------------------------------------------

def find_chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) paths, or None. GitHub's runners name their matching driver
    folder in CHROMEWEBDRIVER."""
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome",
                                              "google-chrome-stable") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if os.environ.get("CHROMEWEBDRIVER"):
        candidate = Path(os.environ["CHROMEWEBDRIVER"]) / "chromedriver"
        driver = str(candidate) if candidate.is_file() else driver
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="session")
def book_site(request) -> Path:
    """The book of the first smoke run (or of BOOK_TEST_RUN), built by the CLI; its html folder."""
    root = os.environ.get("BOOK_TEST_RUN")
    root = Path(root) if root else request.getfixturevalue("smoke_runs")[0]
    env = {**os.environ, "HELPERS_OUTPUT_DIR": str(root)}
    done = subprocess.run([sys.executable, "-m", "helpers", "book"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((root / "build" / "book" / "book.json").read_text())
    if record["warnings"]:
        warnings.warn("book build warnings:\n" + "\n".join(record["warnings"]), stacklevel=1)
    return Path(record["html"])


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def browser(request, tmp_path_factory):
    """(driver, base URL, results dict): the site served on 127.0.0.1, headless Chromium."""
    found = find_chromium()
    if found is None:  # CI installs it (.ci/run): there a missing browser is a failure
        (pytest.fail if os.environ.get("CI") else pytest.skip)(INSTALL_HINT)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is missing: `make setup`")
    from selenium.webdriver.chrome.service import Service

    book_site = request.getfixturevalue("book_site")  # after the check: no browser, no build

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(book_site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    driver.set_page_load_timeout(60)
    results: dict = {}
    try:
        yield driver, f"http://127.0.0.1:{server.server_address[1]}", results
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
        shots = book_site.parent / "screenshots"
        shots.mkdir(exist_ok=True)
        (shots / "browser_check.json").write_text(json.dumps(results, indent=2) + "\n")


def _wait_for(driver, script: str, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value or time.monotonic() > end:
            return value
        time.sleep(0.2)


IMAGES_JS = ("return Array.from(document.images).map(i => ({src: i.getAttribute('src').slice(0, 80), "
             "complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))")
AUDIO_JS = ("return Array.from(document.querySelectorAll('audio')).map(a => ({ready: a.readyState, "
            "duration: a.duration, error: a.error ? a.error.code : null}))")
LINKS_JS = "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"
RESOURCES_JS = "return performance.getEntriesByType('resource').map(r => r.name)"


def _link_problems(links: list[str], base: str, site: Path) -> list[str]:
    """Internal links whose file, or whose #anchor in that file, does not exist."""
    problems = []
    for link in sorted(set(links)):
        if not link.startswith(base + "/"):
            continue  # external (launch links, the repository): not ours to check offline
        parts = urlsplit(link)
        target = site / unquote(parts.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            problems.append(f"{link}: no such file")
        elif parts.fragment and target.suffix == ".html":
            ids = re.findall(r'\bid="([^"]+)"', target.read_text())
            if unquote(parts.fragment) not in ids:
                problems.append(f"{link}: no element with that id")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_reads_well_in_a_browser(page, browser, book_site):
    driver, base, results = browser
    driver.get(f"{base}/{page}.html" + ("?q=pruning" if page == "search" else ""))
    _wait_for(driver, "return document.readyState === 'complete'")
    _wait_for(driver, "return Array.from(document.images).every(i => i.complete)")
    _wait_for(driver, "return Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1 || a.error)")
    if page == "search":
        _wait_for(driver, "return document.querySelectorAll('#search-results li').length > 0")
    images, audio = driver.execute_script(IMAGES_JS), driver.execute_script(AUDIO_JS)
    problems = _link_problems(driver.execute_script(LINKS_JS), base, book_site)
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    outside = [r for r in driver.execute_script(RESOURCES_JS) if not r.startswith((base + "/", "data:"))]
    shots = book_site.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    driver.save_screenshot(str(shots / f"{page}.png"))
    hits = driver.execute_script("return document.querySelectorAll('#search-results li').length")
    links = driver.execute_script(LINKS_JS)
    results[page] = {"console_errors": errors, "images": len(images), "audio": len(audio),
                     "internal_links": len({u for u in links if u.startswith(base + "/")}),
                     "resources_from_elsewhere": outside,
                     "broken_links": problems, "search_hits": hits if page == "search" else None,
                     "math": driver.execute_script("return document.querySelectorAll('mjx-container').length")}

    assert errors == [], errors
    assert outside == [], f"{page} loads files from outside the site: {outside}"
    assert [i for i in images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)] == []
    assert [a for a in audio if a["ready"] < 1 or a["error"] or not a["duration"] > 0] == []
    assert problems == []
    if page in CHAPTERS:
        assert images, f"{page} shows no figure"
        assert "Run it yourself" in driver.page_source
        i = CHAPTERS.index(page)
        nav = driver.execute_script(
            "return Array.from(document.querySelectorAll('.prev-next-area a')).map(a => a.getAttribute('href'))")
        assert ("index.html" if i == 0 else f"{CHAPTERS[i - 1]}.html") in nav, nav
        assert i == len(CHAPTERS) - 1 or f"{CHAPTERS[i + 1]}.html" in nav, nav
    if page == "search":
        assert hits > 0, "search found nothing for 'pruning'"
    if page in CHAPTERS and _has_math(page):
        assert results[page]["math"] > 0, f"{page}: its $math$ was not typeset"


def _has_math(chapter: str) -> bool:
    nb = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    return any(re.search(r"\$[^$\n]+\$", c.source) for c in nb.cells if c.cell_type == "markdown")


@pytest.mark.slow
def test_the_book_plays_the_runs_audio(book_site):
    """The audio players are in the static pages themselves (no server, no kernel behind them)."""
    pages = {p.stem: p.read_text() for p in book_site.glob("[0-9][0-9]_*.html")}
    with_audio = [name for name, html in pages.items() if "<audio" in html]
    assert with_audio, "no chapter page has an audio player"
    for name in with_audio:
        sources = re.findall(r'<source src="([^"]{0,40})', pages[name])
        assert sources and all(s.startswith("data:audio/") for s in sources), name


def test_tensorflow_start_up_notices_are_left_out_of_the_book():
    from helpers.book import drop_tensorflow_notices

    notice = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
              "I0000 00:00:1796021800.628778   24532 port.cc:153] oneDNN custom operations are on.\n")
    outputs = [{"output_type": "stream", "name": "stderr", "text": notice},
               {"output_type": "stream", "name": "stderr", "text": notice + "UserWarning: kept\n"},
               {"output_type": "stream", "name": "stdout", "text": "I0000 printed by the notebook itself\n"}]
    kept = drop_tensorflow_notices(outputs)
    assert [o["text"] for o in kept] == ["UserWarning: kept\n", "I0000 printed by the notebook itself\n"]
