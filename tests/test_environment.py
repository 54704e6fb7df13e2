"""The set-up files agree with each other, and the package imports cheaply with Keras 2."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = _pyproject()["project"]
    wanted = {r for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip_section if not r.startswith("-e")}
    assert {_name(r): r for r in listed} == {_name(r): r for r in wanted}


def test_every_range_is_bounded_and_nothing_is_pinned():
    project = _pyproject()["project"]
    no_deps = _pyproject()["tool"]["instrument-classification"]["no-deps"]
    for req in project["dependencies"] + project["optional-dependencies"]["dev"] + no_deps:
        assert ">=" in req and "<" in req and "==" not in req, req


def test_makefile_installs_the_no_deps_packages_declared_in_pyproject():
    no_deps = _pyproject()["tool"]["instrument-classification"]["no-deps"]
    makefile = (ROOT / "Makefile").read_text()
    for req in no_deps:
        assert f'"{req}"' in makefile, req


def test_import_is_cheap_and_selects_keras_2():
    code = ("import sys, os, helpers; "
            "assert os.environ['TF_USE_LEGACY_KERAS'] == '1'; "
            "assert 'tensorflow' not in sys.modules, 'helpers imports TensorFlow eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_tensorflow_imported_after_helpers_prints_no_start_up_notices():
    """TensorFlow's native INFO lines (oneDNN, CUDA) ignore every log level; the hook helpers
    installs keeps them out of whatever first imports TensorFlow, and nothing else changes."""
    code = ("import helpers, tf_keras, tensorflow as tf; "
            "assert tf.constant(2.0).numpy() == 2.0; "
            "import importlib.resources; assert importlib.resources.files('tensorflow').is_dir()")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr, done.stderr


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_ci_installs_the_browser_for_the_book_check():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install" in ci and "chromium chromium-driver" in ci
    assert ci.index("chromium-driver") < ci.index("make test")


def _steps(job: dict) -> list[str]:
    return [step.get("run", "") + step.get("uses", "") for step in job["steps"]]


def test_workflow_tests_builds_the_book_and_publishes_it_from_the_default_branch():
    workflows = {p.name: yaml.safe_load(p.read_text()) for p in (ROOT / ".github" / "workflows").glob("*.yml")}
    jobs = workflows["ci.yml"]["jobs"]
    assert "make test" in _steps(jobs["test"]) and "make book" in _steps(jobs["test"])
    uploads = [s["with"]["path"] for s in jobs["test"]["steps"] if "upload-artifact" in s.get("uses", "")]
    assert any("build/book/html" in path for path in uploads)
    book = jobs["book"]
    assert "default_branch" in book["if"] and book["needs"] == "test"
    assert _steps(book)[-3:] == ["make run", "make book", "actions/upload-pages-artifact@v3"]
    assert book["steps"][-1]["with"]["path"] == "build/book/html"
    deploy = jobs["deploy"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages" and "deploy-pages" in _steps(deploy)[0]
