"""The course as a web book: a static HTML site built from the last chain run's executed notebooks.

``python -m helpers book`` (``make book``) turns ``executed/`` (written by ``make run``) into a
site under ``build/book/html/`` with Sphinx, myst-nb and sphinx-book-theme, all pure Python.
Nothing is executed again (myst-nb ``nb_execution_mode = "off"``): every figure, table, audio
player and number on a page is the one the chain recorded.

- a landing page made of the README's report: what the project is and both datasets (from
  README.md), this run's results table and key figures (from :mod:`helpers.report`'s generators);
- one page per chapter, in the executed notebooks' order, each with launch links (Colab,
  Binder, source) built from :data:`REPOSITORY_URL` and a "run it yourself" note;
- navigation between chapters and full-text search (Sphinx's own, which works offline);
- no file from the internet: MathJax is served from the site itself and the ipywidgets
  loader (a CDN script) is switched off.

``build/book/`` (under the output root, see :mod:`helpers.paths`) holds ``src/`` (the generated
sources: notebook copies, ``index.md``, ``conf.py``), ``html/`` (the site) and ``screenshots/``
(written by the browser check, tests/test_book.py).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from helpers.files import write_json
from helpers.paths import REPO_ROOT, book_dir, executed_dir, figures_dir, notebooks_dir

# The one setting every launch and source link is built from: the public GitHub repository of
# the course (OWNER is a placeholder until it has one). The GitHub workflow sets
# BOOK_REPOSITORY_URL to the repository it runs in, which overrides it.
REPOSITORY_URL = "https://github.com/OWNER/instrument-classification"
BRANCH = "main"
TITLE = "Musical-instrument classification"
# README sections (## headings) that the landing page shows, in this order.
README_SECTIONS = ("The two datasets",)
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
           '<text x="4" y="27" font-size="28">\u266a</text></svg>\n')
# What a Colab runtime needs before a chapter runs: the Makefile's steps, without a venv.
COLAB_SETUP = ("!git clone --depth 1 {repo} course\n"
               "!pip install -q -e course && pip install -q --no-deps {no_deps}\n"
               "!cd course && python -m helpers data demo\n"
               "# then restart the session, so that `import helpers` finds the package")


class BookError(RuntimeError):
    """The book cannot be built (no chain run, an incomplete one, or Sphinx failed)."""


@dataclass(frozen=True)
class Chapter:
    path: Path      # the executed notebook
    title: str      # its first line, '# NN · Title', without the '# '
    profile: str    # the chain profile it ran with ('full', 'smoke', or '?' if unknown)
    finished: str   # papermill's end time (ISO), '' if unknown

    @property
    def name(self) -> str:
        return self.path.stem


def repository_url() -> str:
    """:data:`REPOSITORY_URL`, or ``BOOK_REPOSITORY_URL`` when set (CI: the repository it runs in)."""
    return os.environ.get("BOOK_REPOSITORY_URL", "").strip().rstrip("/") or REPOSITORY_URL


def launch_links(notebook: str, repo: str | None = None) -> dict[str, str]:
    """Colab, Binder and source links of ``notebooks/<notebook>.ipynb`` in ``repo``."""
    repo = (repo or repository_url()).rstrip("/")
    path = f"notebooks/{notebook}.ipynb"
    slug = repo.split("github.com/", 1)[-1]
    return {
        "Open in Colab": f"https://colab.research.google.com/github/{slug}/blob/{BRANCH}/{path}",
        "Launch on Binder": f"https://mybinder.org/v2/gh/{slug}/{BRANCH}?labpath={quote(path, safe='')}",
        "Source on GitHub": f"{repo}/blob/{BRANCH}/{path}",
    }


def _no_deps() -> str:
    """The Makefile's ``--no-deps`` packages (pyproject's ``no-deps`` list), quoted for a shell."""
    block = re.search(r"^no-deps = \[(.*?)\]", (REPO_ROOT / "pyproject.toml").read_text(), re.M | re.S)
    return " ".join(f'"{req}"' for req in re.findall(r'"([^"]+)"', block.group(1))) if block else ""


def launch_note(chapter: Chapter, repo: str | None = None) -> str:
    """The MyST block under each chapter's title: launch links and how to run it yourself."""
    repo = (repo or repository_url()).rstrip("/")
    links = " · ".join(f"[{label}]({url})" for label, url in launch_links(chapter.name, repo).items())
    when = f" of {chapter.finished[:16].replace('T', ' ')} UTC" if chapter.finished else ""
    return "\n".join([
        "````{admonition} Run it yourself",
        ":class: tip",
        "",
        links,
        "",
        f"This page is the executed notebook of the chain's **{chapter.profile}** run{when}, "
        "shown as it ran. To run it yourself (Python 3.10-3.12), in a clone of the repository:",
        "",
        "```bash",
        "make run",
        f".venv/bin/jupyter lab notebooks/{chapter.name}.ipynb",
        "```",
        "",
        "The first sets up `.venv`, builds the demo dataset and runs every chapter; the second "
        "opens this one. On Colab, give the notebook the package and the data first:",
        "",
        "```bash",
        COLAB_SETUP.format(repo=repo, no_deps=_no_deps()),
        "```",
        "````",
    ])


def executed_chapters(executed: Path | None = None) -> list[Chapter]:
    """The executed notebooks of the last chain run, in chapter order.

    Only notebooks that ``notebooks/`` still has count (an old copy of a renamed chapter does
    not). Raises :class:`BookError` (saying how to make a run) if there is none, if a numbered
    notebook of ``notebooks/`` has no executed copy, or if a copy stopped at an error.
    """
    import nbformat

    executed = executed or executed_dir()
    found = sorted(executed.glob("[0-9][0-9]_*.ipynb")) if executed.is_dir() else []
    if not found:
        raise BookError(f"no executed notebooks in {executed}: the book is built from a chain "
                        "run. Run `make run` first (or, for a quick look, `.venv/bin/python -m "
                        "helpers chain --profile smoke`), then `make book`.")
    sources = {p.stem for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb")}
    found = [p for p in found if p.stem in sources or not sources]  # not a renamed chapter's old copy
    missing = sorted(sources - {p.stem for p in found})
    if missing:
        raise BookError(f"{executed} lacks {', '.join(missing)}: the last chain run did not reach "
                        f"them, or they are new. Run `make run` (or `.venv/bin/python -m helpers "
                        f"chain --from {missing[0][:2]}`), then `make book`.")
    chapters = []
    for path in found:
        nb = nbformat.read(path, as_version=4)
        meta = nb.metadata.get("papermill", {})
        unexecuted = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()
                      and c.get("execution_count") is None]
        if meta.get("exception") or unexecuted:
            raise BookError(f"{path} stopped before its end (a cell failed or was never run): "
                            f"rerun the chain from it, `.venv/bin/python -m helpers chain --from "
                            f"{path.name[:2]}`, then `make book`.")
        first = nb.cells[0].source.splitlines()[0] if nb.cells else ""
        title = first.lstrip("#").strip() if first.startswith("# ") else path.stem
        chapters.append(Chapter(path, title, str(meta.get("parameters", {}).get("profile", "?")),
                                str(meta.get("end_time", ""))))
    return chapters


def fold_carriage_returns(outputs: list) -> list:
    """Merge consecutive stream outputs of one name and keep only the last frame of each line
    redrawn with carriage returns, as Jupyter shows it (a tqdm bar becomes its final state)."""
    merged: list = []
    for out in outputs:
        if (out.get("output_type") == "stream" and merged
                and merged[-1].get("output_type") == "stream" and merged[-1]["name"] == out["name"]):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(out)
    for out in merged:
        if out.get("output_type") == "stream" and "\r" in out["text"]:
            lines = out["text"].replace("\r\n", "\n").split("\n")
            out["text"] = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)
    return merged


# TensorFlow's C++ start-up notices (INFO lines, and absl's note that precedes them), printed once
# per process whatever TF_CPP_MIN_LOG_LEVEL says: noise for a reader, so the book leaves them out.
_TF_NOTICE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are "
                        r"written to STDERR|I0000 [\d:. ]+\d+ [\w.]+:\d+\] .*)$")


def drop_tensorflow_notices(outputs: list) -> list:
    """Stream outputs without TensorFlow's C++ INFO start-up lines; streams left empty go."""
    kept = []
    for out in outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            lines = [ln for ln in out["text"].split("\n") if not _TF_NOTICE.match(ln)]
            out["text"] = "\n".join(lines)
            if not out["text"].strip():
                continue
        kept.append(out)
    return kept


def chapter_source(chapter: Chapter, repo: str | None = None):
    """The executed notebook, as the book shows it: the launch note under its title, progress
    bars folded. The executed file itself is not changed."""
    import nbformat

    nb = nbformat.read(chapter.path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = drop_tensorflow_notices(fold_carriage_returns(cell.outputs))
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(launch_note(chapter, repo), id="book-launch"))
    return nb


def _readme_parts(readme: str) -> tuple[str, str, dict[str, str]]:
    """(title, intro, {section heading: body}) of README.md's '#' and '##' structure."""
    title, intro, sections, current = "", [], {}, None
    for line in readme.splitlines():
        if line.startswith("# ") and not title:
            title = line[2:].strip()
        elif line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
        elif current is None:
            intro.append(line)
        else:
            sections[current].append(line)
    return title, "\n".join(intro).strip(), {k: "\n".join(v).strip() for k, v in sections.items()}


def _absolute_links(markdown: str, repo: str) -> str:
    """Repository-relative links of README prose (``[x](data/README.md)``) point to the repository."""
    return re.sub(r"\]\((?![a-z]+:|#)([^)\s]+)\)", lambda m: f"]({repo}/blob/{BRANCH}/{m.group(1)})",
                  markdown)


def landing_page(chapters: list[Chapter], figures: Path, repo: str | None = None) -> str:
    """``index.md``: the README's report, with this run's results table and key figures."""
    from helpers.report import chain_time_markdown, key_figures_markdown, results_markdown
    from helpers.results import load_summary

    repo = (repo or repository_url()).rstrip("/")
    _, intro, sections = _readme_parts((REPO_ROOT / "README.md").read_text())
    profiles = sorted({c.profile for c in chapters})
    finished = max((c.finished for c in chapters), default="")
    parts = [f"# {TITLE}", "", _absolute_links(intro, repo), "",
             "This book is the series as its last run left it: each chapter is an executed "
             f"notebook of the **{', '.join(profiles)}** profile of the chain"
             + (f" (finished {finished[:16].replace('T', ' ')} UTC)" if finished else "")
             + ", with its figures, tables, audio and takeaways. Nothing was run again to make it; "
             f"the notebooks themselves are in the [repository]({repo}).", "",
             "```{toctree}", ":maxdepth: 1", ":caption: Chapters", "",
             *[c.name for c in chapters], "```", ""]
    for heading in README_SECTIONS:
        if heading in sections:
            parts += [f"## {heading}", "", _absolute_links(sections[heading], repo), ""]
    summary = load_summary()
    parts += ["## Results", "",
              "Every score is on the **test clips**, which no model or choice saw.", "",
              results_markdown(summary, run=", ".join(profiles), timing=False), "",
              *[chain_time_markdown(p) for p in profiles], ""]
    parts += ["## The story in figures", "", key_figures_markdown(figures, link_prefix="figures"), ""]
    return "\n".join(parts)


def sphinx_settings(repo: str | None = None, math: bool = True) -> dict:
    """Everything ``conf.py`` sets, in one place."""
    repo = (repo or repository_url()).rstrip("/")
    settings = {
        "project": TITLE,
        "author": "the course authors",
        "extensions": ["myst_nb"],
        "html_theme": "sphinx_book_theme",
        "html_title": TITLE,
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        # Render what the chain recorded; never execute.
        "nb_execution_mode": "off",
        "nb_merge_streams": True,
        "nb_render_markdown_format": "myst",  # markdown outputs (takeaways, tables) like cells
        # The ipywidgets loader is a CDN script: none of our notebooks needs it.
        "nb_ipywidgets_js": {},
        "myst_enable_extensions": ["dollarmath"],
        "html_copy_source": False,       # the .ipynb files are in the repository
        "html_show_sourcelink": False,
        "html_static_path": ["_static"],
        "html_favicon": "_static/favicon.svg",  # else browsers ask for /favicon.ico (a 404)
        # The theme logs a console error on a first visit when no colour mode is stored.
        "html_context": {"default_mode": "light"},
        "html_theme_options": {
            "repository_url": repo,
            "repository_branch": BRANCH,
            "path_to_docs": "notebooks",
            "use_repository_button": True,
            "use_download_button": False,
            "launch_buttons": {"colab_url": "https://colab.research.google.com",
                               "binderhub_url": "https://mybinder.org",
                               "notebook_interface": "jupyterlab"},
            "show_toc_level": 2,
        },
        "suppress_warnings": ["mystnb.unknown_mime_type"],
    }
    if math:  # served from the site itself (see _mathjax_file), never from a CDN
        settings["mathjax_path"] = "mathjax/tex-svg.js"
    return settings


def _mathjax_file() -> Path:
    """MathJax 3's single-file TeX-to-SVG bundle, shipped by the sphinx-mathjax-offline wheel."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = Path(distribution("sphinx-mathjax-offline").locate_file(
            "sphinx-mathjax-offline/static/mathjax/tex-svg.js"))
    except PackageNotFoundError:
        path = Path("/nonexistent")
    if not path.is_file():
        raise BookError("MathJax is missing: install the book's dependencies with `make setup`")
    return path


def prepare_sources(src: Path, chapters: list[Chapter], repo: str | None = None) -> None:
    """Write the Sphinx sources into ``src`` (emptied first)."""
    import nbformat

    if src.exists():
        shutil.rmtree(src)
    (src / "figures").mkdir(parents=True)
    (src / "_static" / "mathjax").mkdir(parents=True)
    for chapter in chapters:
        nbformat.write(chapter_source(chapter, repo), src / chapter.path.name)
    for png in sorted(figures_dir().glob("*.png")):  # the chain's figures, for the landing page
        shutil.copy2(png, src / "figures" / png.name)
    shutil.copy2(_mathjax_file(), src / "_static" / "mathjax" / "tex-svg.js")
    (src / "_static" / "favicon.svg").write_text(FAVICON)
    (src / "index.md").write_text(landing_page(chapters, src / "figures", repo))
    conf = "\n".join(f"{key} = {value!r}" for key, value in sphinx_settings(repo).items())
    (src / "conf.py").write_text("# Generated by helpers/book.py (python -m helpers book): edit "
                                 "sphinx_settings() there, not this file.\n" + conf + "\n")


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build_book(out: Path | None = None, quiet: bool = True) -> dict:
    """Build the site from ``executed/``; returns ``{"html", "pages", "seconds", "bytes", "warnings"}``.

    ``out`` defaults to ``build/book`` under the output root. Raises :class:`BookError`.
    """
    import contextlib
    import io

    from sphinx.cmd.build import build_main

    start = time.perf_counter()
    out = out or book_dir()
    chapters = executed_chapters()
    src, html = out / "src", out / "html"
    prepare_sources(src, chapters)
    if html.exists():
        shutil.rmtree(html)
    warnings = io.StringIO()
    args = ["-b", "html", "-d", str(out / ".doctrees"), "-E", *(["-q"] if quiet else []),
            str(src), str(html)]
    with contextlib.redirect_stderr(warnings):
        status = build_main(args)
    messages = [ln for ln in warnings.getvalue().splitlines() if ln.strip()]
    if status != 0:
        raise BookError("Sphinx failed:\n" + "\n".join(messages[-30:]))
    record = {"html": str(html), "pages": [c.name for c in chapters],
              "seconds": round(time.perf_counter() - start, 1), "bytes": _size(html),
              "warnings": messages}
    write_json(out / "book.json", record)
    return record
