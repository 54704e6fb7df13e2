"""The notebook chain: every numbered notebook, in order, executed with papermill.

``python -m helpers chain --profile full|smoke [--from NN] [--to NN]`` is what ``make run`` and
the tests use. Each notebook's ``parameters`` cell holds the FULL profile's values: what a student
gets in JupyterLab, and what the chain runs with ``--profile full``. Any other profile is ONE table,
:data:`PROFILES`: the chain passes each notebook, as papermill parameters, the values of that table
for the names its ``parameters`` cell declares (:func:`notebook_parameters`), and papermill writes
them into a cell after the ``parameters`` cell; the notebooks know nothing of profiles. The chain
also chooses where a profile's run writes (:func:`profile_output`): a smoke run's figures,
results, models and executed copies go to ``build/smoke/``, set as ``HELPERS_OUTPUT_DIR`` for the
chain and the kernels it starts. To run one chapter with the smoke values:
``python -m helpers chain --profile smoke --from 04 --to 04``. Executed copies go to
``executed/`` (git-ignored), each beside its kernel's stderr (``NN_name.kernel.log``,
:func:`kernel_log_path`), so that the chain's own log holds only its lines.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.environment import describe as describe_environment
from helpers.files import write_json
from helpers.paths import executed_dir, notebooks_dir, profile_output_dir, results_dir

# The parameters of each profile, injected by papermill into every notebook that declares them
# (a name no notebook declares is caught by tests/test_notebooks.py). "full" is the notebooks'
# own parameters cells.
PROFILES: dict[str, dict] = {
    "full": {},
    "smoke": {
        "max_clips_per_class": 14,
        "max_folds": 3,
        "epochs": 3,
        "seeds": [0],
        "n_trials": 2,
        "fine_tune_epochs": 2,
        "sparsities": [0.0, 0.8],
        "fold_sparsities": [0.8],
        "ablation_epochs": 2,
        "n_examples": 2,
        "cutmix_alphas": [1.0],
        "cutmix_probs": [1.0],
        "waveform_copies": 1,
    },
}


class ChainError(RuntimeError):
    """A notebook of the chain failed; the message names the notebook and the cell."""


def chain_notebooks(start: str | None = None, stop: str | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in order, from chapter ``start`` to ``stop``
    (both included, e.g. '04'; None: from the first, to the last)."""
    found = sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    numbers = {p.name[:2] for p in found}
    for bound in (start, stop):
        if bound is not None and not str(bound).strip().isdigit():
            raise ChainError(f"a chapter is a number such as 04, not {bound!r}")
        if bound is not None and f"{int(bound):02d}" not in numbers:
            raise ChainError(f"no notebook numbered {int(bound):02d} in {notebooks_dir()}")
    if start is not None and stop is not None and int(start) > int(stop):
        raise ChainError(f"--from {int(start):02d} comes after --to {int(stop):02d}")
    if start is not None:
        found = [p for p in found if p.name[:2] >= f"{int(start):02d}"]
    if stop is not None:
        found = [p for p in found if p.name[:2] <= f"{int(stop):02d}"]
    return found


def notebook_parameters(path: Path, profile: str, overrides: dict | None = None) -> dict:
    """The papermill parameters of notebook ``path`` in a run of ``profile``: the values of
    :data:`PROFILES` and ``overrides`` (e.g. dataset/subset; they win) for the names its
    ``parameters`` cell declares, and no other (papermill would inject any name it is given).
    """
    import papermill as pm

    if profile not in PROFILES:
        raise ChainError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
    declared = pm.inspect_notebook(str(path))
    values = {**PROFILES[profile], **(overrides or {})}
    return {k: v for k, v in values.items() if k in declared}


@contextmanager
def profile_output(profile: str) -> Iterator[Path | None]:
    """Run the block with the output root of ``profile`` (:func:`helpers.paths.profile_output_dir`):
    ``HELPERS_OUTPUT_DIR`` set for the chain's process, hence for every kernel (and its workers)
    it starts, and taken away again afterwards. Yields that folder, or None when the output root
    stays as it is (the full profile, or a place the user's ``HELPERS_OUTPUT_DIR`` names).
    """
    folder = profile_output_dir(profile)
    if folder is None:
        yield None
        return
    os.environ["HELPERS_OUTPUT_DIR"] = str(folder)  # only ever set here when it was unset
    try:
        yield folder
    finally:
        os.environ.pop("HELPERS_OUTPUT_DIR", None)


def _record_profile(executed: Path, profile: str) -> None:
    """Name the profile in the executed copy's metadata beside the parameters papermill recorded
    (``metadata.papermill.parameters.profile``; no notebook declares it, so it is not injected):
    :mod:`helpers.book` names each chapter's run by it."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    recorded = nb.metadata.setdefault("papermill", {}).setdefault("parameters", {})
    recorded["profile"] = profile
    nbformat.write(nb, executed)


# ipykernel logs a warning at every start that its TCP ports are not encrypted. The chain's
# kernels listen on 127.0.0.1 only and every message is signed with the run's key; the warning
# would repeat for every notebook, so the kernels log errors only (a cell's own warnings and
# output are not part of this log and still reach the executed notebook).
KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=ERROR",)


def kernel_log_path(path: Path) -> Path:
    """Where the chain keeps the stderr of the kernel that runs notebook ``path``
    (``executed/NN_name.kernel.log``)."""
    return executed_dir() / f"{path.stem}.kernel.log"


def _logged_kernel_manager(log_path: Path):
    """A kernel manager class whose kernels write their process's stderr to ``log_path``.

    What a cell prints reaches the executed notebook either way; the kernel process's own
    stderr carries only what happens outside cells: start-up notices, and at shutdown
    ipykernel's occasional "Task was destroyed but it is pending!", which would otherwise land
    in the middle of the chain's log. The file keeps all of it, e.g. why a kernel died.
    ``_async_launch_kernel`` is the method jupyter_client names for launching kernels
    differently.
    """
    from jupyter_client import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            with open(log_path, "ab") as log:  # the kernel keeps its own copy of the descriptor
                await super()._async_launch_kernel(kernel_cmd, **{**kw, "stderr": log})

    return LoggedKernelManager


def _log_tail(log_path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of a kernel log, indented, or '' when it is empty or missing."""
    try:
        text = log_path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def run_notebook(path: Path, profile: str, progress: bool = True,
                 overrides: dict | None = None) -> float:
    """Execute one notebook into ``executed/`` with the parameters of ``profile``
    (:func:`notebook_parameters`) and that profile's output root (:func:`profile_output`);
    returns seconds. Raises :class:`ChainError`."""
    import papermill as pm
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from helpers.progress import log_kwargs, progress_mode

    mode = progress_mode() if progress else "off"  # papermill's per-cell bar
    bar = log_kwargs() if mode == "log" else mode == "bar"
    parameters = notebook_parameters(path, profile, overrides)
    start = time.perf_counter()
    with profile_output(profile):  # a no-op inside run_chain, which has set it already
        out = executed_dir() / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        log_path = kernel_log_path(path)
        log_path.write_bytes(b"")  # this run's kernel only
        try:
            pm.execute_notebook(str(path), str(out), parameters=parameters,
                                cwd=str(path.parent), progress_bar=bar, kernel_name="python3",
                                extra_arguments=list(KERNEL_ARGUMENTS),
                                kernel_manager_class=_logged_kernel_manager(log_path))
        except PapermillExecutionError as exc:
            first_line = next((ln for ln in exc.source.splitlines() if ln.strip()), "")
            raise ChainError(
                f"{path.name} failed in the cell starting {first_line!r} (execution count "
                f"{exc.exec_count}, cell {exc.cell_index} of the executed copy): "
                f"{exc.ename}: {exc.evalue}\nexecuted copy with the traceback: {out}") from None
        except DeadKernelError:  # killed (e.g. out of memory) or crashed in native code
            tail = _log_tail(log_path)
            raise ChainError(
                f"{path.name}: its kernel died while running it (killed, e.g. for lack of memory, "
                f"or crashed in native code); executed copy so far: {out}; the kernel's log: "
                f"{log_path}" + (f", which ends:\n{tail}" if tail else " (empty)")) from None
        seconds = time.perf_counter() - start
        _record_profile(out, profile)
    return seconds


def run_chain(profile: str = "full", start: str | None = None, progress: bool = True,
              overrides: dict | None = None, stop: str | None = None) -> dict:
    """Run the chain; returns and writes ``results/chain_<profile>.json`` (atomically) with seconds
    per notebook. A run of only some chapters (``start``/``stop``) writes
    ``chain_<profile>_partial.json`` instead, so the record of the last whole chain (which the
    README quotes) is not replaced by a part of one.

    ``overrides`` set parameters of every notebook that declares them, e.g.
    ``{"dataset": "fsdkaggle2018", "subset": "seed5"}``.
    """
    if profile not in PROFILES:
        raise ChainError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
    notebooks = chain_notebooks(start, stop)
    if not notebooks:
        raise ChainError(f"no numbered notebooks in {notebooks_dir()}")
    with profile_output(profile) as folder:  # the notebooks' kernels inherit it
        if folder is not None:
            print(f"{profile} profile: outputs go to {folder} (the full run's stay as they are)",
                  flush=True)
        times: dict[str, float] = {}
        for i, nb in enumerate(notebooks, 1):
            print(f"[{i}/{len(notebooks)}] {nb.name} ({profile} profile)", flush=True)
            times[nb.stem] = round(run_notebook(nb, profile, progress, overrides), 1)
            print(f"    done in {times[nb.stem]:.0f} s", flush=True)
        record = {"profile": profile, "overrides": overrides or {}, "seconds": times,
                  "total_seconds": round(sum(times.values()), 1)}
        whole = len(notebooks) == len(chain_notebooks())
        path = write_json(results_dir() / f"chain_{profile}{'' if whole else '_partial'}.json", record)
        if whole:  # where the whole chain ran: CPU, packages, the pinned numeric settings
            write_json(results_dir() / f"environment_{profile}.json", describe_environment())
    print(f"chain finished in {record['total_seconds']:.0f} s; times in {path}")
    return record
