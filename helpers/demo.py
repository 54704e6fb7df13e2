"""The offline demo dataset: General MIDI SoundFont notes dressed up as Freesound uploads.

FSDKaggle2018's audio (4.6 GiB) is not always reachable, so :func:`build_demo` renders a
stand-in fully offline. Each clip varies the way Freesound uploads vary: single notes, phrases,
chords or drum patterns across the instrument's pitch range; velocity; tuning; vibrato;
0.3-10 s durations skewed short; leading and trailing silence (:mod:`helpers.soundfonts` plans
and renders them from the sample libraries of :mod:`helpers.sources.libraries`: two
pip-installed SoundFonts and five Debian packages, deduplicated); then a random microphone and
room: EQ,
synthetic reverberation, background noise and level drift (:mod:`helpers.acoustics`). The
result has FSDKaggle2018's class names, CSV columns and folder layout, so one loader
(:func:`helpers.data.load_clips`) serves both datasets. This module holds the build: the
configuration, which clips exist and in which split, one clip end to end, the folders and CSVs.

It is not real Freesound audio: every class comes from three to seven libraries, one to four
sampled presets each, so a model can score far higher here than on real recordings (see
data/README.md). :data:`DEMO` is the course's demo (seven libraries, duplicates dropped);
``DemoConfig()`` alone renders the two pip SoundFonts only (no download: what the tests build).
``<root>/demo_sources.csv`` records how each clip was made and from which library, for the
nested leave-one-library-out protocol (:func:`helpers.splits.library_folds`). Used in: ``python -m helpers data demo`` (``make demo``; every notebook reads its output
with ``dataset="demo"``), benchmarks/bench_demo.py.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from helpers import paths
from helpers.acoustics import simulate_recording
from helpers.data import (
    AUDIO_TEST_DIR,
    AUDIO_TRAIN_DIR,
    INSTRUMENT_CLASSES,
    META_DIR,
    TEST_CSV,
    TRAIN_CSV,
)
from helpers.files import atomic_folder, json_safe, remove_leftovers, write_json
from helpers.soundfonts import (
    CLASS_VOICES,
    Catalogue,
    Performance,
    VoiceOption,
    load_catalogue,
    plan_performance,
    preset_name,
    render_performance,
)
from helpers.sources.libraries import LIBRARIES

# Bump when a change here, in helpers.soundfonts or in helpers.acoustics changes what is written.
FORMAT_VERSION = 2
SOURCES_CSV = "demo_sources.csv"
LIBRARIES_CSV = "demo_libraries.csv"  # one row per library: used or missing, and why
SHARED_CSV = "demo_shared_recordings.csv"  # voices of two libraries that share recordings
DROPPED_CSV = "demo_dropped_voices.csv"  # voices left out as duplicates of another library's
TWO_SOUNDFONTS: tuple[str, ...] = ("TimGM6mb", "Merlin")
ALL_LIBRARIES: tuple[str, ...] = tuple(LIBRARIES)
STAMP = ".complete"
DEMO_CLASSES: tuple[str, ...] = tuple(c for c in INSTRUMENT_CLASSES if c in CLASS_VOICES)


# --------------------------------------------------------------------------------------------
# Configuration and clip identities
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoConfig:
    """Everything that shapes the demo set's content (the reuse stamp stores it)."""

    clips_per_class: int = 120  # train + test together
    seed: int = 0
    # Which libraries render the clips, in deduplication order (earlier wins): the two pip
    # SoundFonts (no download), or ALL_LIBRARIES (:data:`DEMO`, what the chapters read).
    libraries: tuple[str, ...] = TWO_SOUNDFONTS
    drop_duplicates: bool = False  # drop voices whose recordings all appear in an earlier library
    sample_rate: int = 22050
    test_fraction: float = 0.25
    min_seconds: float = 0.3
    max_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.clips_per_class < 2:
            raise ValueError(f"clips_per_class must be >= 2 (one per split), "
                             f"got {self.clips_per_class}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if not 0.1 <= self.min_seconds <= self.max_seconds:
            raise ValueError(f"need 0.1 <= min_seconds <= max_seconds, got "
                             f"{self.min_seconds}, {self.max_seconds}")
        if not 8000 <= self.sample_rate <= 96000:
            raise ValueError(f"sample_rate must be in [8000, 96000] Hz, got {self.sample_rate}")
        unknown = sorted(set(self.libraries) - set(LIBRARIES))
        if unknown or not self.libraries:
            raise ValueError(f"libraries must name some of {', '.join(LIBRARIES)}; got "
                             f"{list(self.libraries)}")


# The course's demo: every library, recordings shared with an earlier library dropped.
DEMO = DemoConfig(libraries=ALL_LIBRARIES, drop_duplicates=True)


@dataclass(frozen=True)
class ClipSpec:
    """Who a clip is: class, index within the class, split and its opaque public identity."""

    label: str
    index: int
    split: str  # "train" or "test"
    fname: str
    freesound_id: int
    usage: str = ""  # test clips: "Public" or "Private"


def clip_rng(seed: int, label: str, index: int, stream: int = 0) -> np.random.Generator:
    """The random generator of one clip; depends only on (seed, class, index, stream)."""
    return np.random.default_rng([seed, zlib.crc32(label.encode()), index, stream])


def _fname(seed: int, label: str, index: int, salt: int = 0) -> str:
    """8 hex digits + '.wav' from a hash, so the name says nothing about the label."""
    digest = hashlib.sha256(f"demo/{seed}/{label}/{index}/{salt}".encode()).hexdigest()
    return digest[:8] + ".wav"


def clip_specs(config: DemoConfig) -> list[ClipSpec]:
    """All clips of a build: per class a stratified test share, unique fnames and ids."""
    n = config.clips_per_class
    n_test = min(n - 1, max(1, round(n * config.test_fraction)))
    ids = np.random.default_rng([config.seed, 1]).choice(
        900_000, size=n * len(DEMO_CLASSES), replace=False) + 100_000
    specs, seen = [], set()
    for c, label in enumerate(DEMO_CLASSES):
        test = set(clip_rng(config.seed, label, 0, stream=2).permutation(n)[:n_test].tolist())
        for i in range(n):
            salt, fname = 0, _fname(config.seed, label, i)
            while fname in seen:  # a 32-bit hash collision: rehash deterministically
                salt += 1
                fname = _fname(config.seed, label, i, salt)
            seen.add(fname)
            rng = clip_rng(config.seed, label, i, stream=1)
            usage = ("Public" if rng.random() < 0.2 else "Private") if i in test else ""
            specs.append(ClipSpec(label, i, "test" if i in test else "train", fname,
                                  int(ids[c * n + i]), usage))
    return specs


# --------------------------------------------------------------------------------------------
# One clip, end to end: plan, render, record
# --------------------------------------------------------------------------------------------

SILENT_PEAK = 1e-3  # a dry rendering quieter than this (-60 dBFS) is re-planned


@dataclass(frozen=True)
class ClipJob:
    """A picklable unit of work for a worker process: the clip and its class's voice options
    in each library that has the class."""

    spec: ClipSpec
    config: DemoConfig
    folder: str  # the build's root folder
    soundfonts: dict[str, str] = field(default_factory=dict)  # font name -> .sf2 path
    options: dict[str, tuple[VoiceOption, ...]] = field(default_factory=dict)  # library -> ...


def make_clip(spec: ClipSpec, config: DemoConfig, soundfonts: dict[str, str],
              options: dict[str, tuple[VoiceOption, ...]]) -> tuple[np.ndarray, dict]:
    """The audio (mono float64, peak < 0 dBFS) and provenance row of one clip.

    The clip's library is drawn first, uniformly among those that sound its class, then what
    it plays (:func:`helpers.soundfonts.plan_performance`); a silent rendering is re-planned.
    """
    rng = clip_rng(config.seed, spec.label, spec.index)
    libraries = list(options)
    for replans in range(10):
        library = str(rng.choice(libraries))
        perf = plan_performance(rng, spec.label, options[library],
                                min_seconds=config.min_seconds, max_seconds=config.max_seconds)
        dry = render_performance(perf, soundfonts[perf.soundfont], config.sample_rate)
        if np.max(np.abs(dry)) > SILENT_PEAK:
            audio, chain = simulate_recording(dry, rng, config.sample_rate)
            name = preset_name(soundfonts[perf.soundfont], perf.bank, perf.program)
            option = next(o for o in options[library] if (o.font, o.bank, o.program) ==
                          (perf.soundfont, perf.bank, perf.program))
            shares = ";".join(sorted(option.shares))
            return audio, (provenance(spec, perf, replans)
                           | {"library": library, "shares": shares, "preset": name} | chain)
    raise RuntimeError(f"{spec.label} #{spec.index}: 10 silent renderings in a row")


def provenance(spec: ClipSpec, perf: Performance, replans: int) -> dict:
    """The demo_sources.csv row describing how a clip was made (before the recording chain)."""
    return {
        "fname": spec.fname, "split": spec.split, "label": spec.label,
        "soundfont": perf.soundfont, "bank": perf.bank, "program": perf.program,
        "is_drum": int(perf.is_drum), "style": perf.style, "n_notes": len(perf.notes),
        "keys": " ".join(str(n.key) for n in perf.notes),
        "velocities": " ".join(str(n.velocity) for n in perf.notes),
        "duration_s": round(perf.seconds, 3),
        "lead_s": round(perf.notes[0].onset, 3) if perf.notes else 0.0,
        "tuning_semitones": round(perf.tuning, 3), "vibrato_cents": round(perf.vibrato_cents, 1),
        "vibrato_hz": round(perf.vibrato_hz, 2), "replans": replans,
    }


def write_clip(job: ClipJob) -> dict:
    """Render one clip, write it as 16-bit PCM WAV, return its provenance row."""
    import soundfile as sf

    audio, row = make_clip(job.spec, job.config, job.soundfonts, job.options)
    folder = AUDIO_TRAIN_DIR if job.spec.split == "train" else AUDIO_TEST_DIR
    sf.write(Path(job.folder) / folder / job.spec.fname, audio, job.config.sample_rate,
             subtype="PCM_16")
    return row


# --------------------------------------------------------------------------------------------
# The build: metadata, stamp, atomic folder
# --------------------------------------------------------------------------------------------

def stamp_contents(config: DemoConfig, missing: tuple[str, ...] = ()) -> dict:
    """What ``.complete`` holds: the config plus everything else that shapes the files, and the
    libraries that could not be had (a later build that has them rebuilds)."""
    stamp = {"config": json_safe(asdict(config)), "format_version": FORMAT_VERSION,
             "classes": list(DEMO_CLASSES)}
    return stamp | {"missing_libraries": sorted(missing)} if missing else stamp


def is_complete(root: Path, config: DemoConfig) -> bool:
    """True if ``root`` holds a finished build of exactly this config with every library."""
    try:
        return json.loads((Path(root) / STAMP).read_text()) == stamp_contents(config)
    except (OSError, ValueError):
        return False


def library_rows(catalogue: Catalogue, rows: list[dict]) -> list[dict]:
    """demo_libraries.csv: each library asked for, used or missing, with its clips per class."""
    from collections import Counter

    clips = Counter((r["library"], r["label"]) for r in rows)
    out = []
    for name, lib in LIBRARIES.items():
        if name not in catalogue.libraries and name not in catalogue.missing:
            continue
        per_class = {label: clips[(name, label)] for label in DEMO_CLASSES if clips[(name, label)]}
        out.append({"library": name, "origin": lib.origin, "package": lib.package,
                    "licence": lib.licence, "recordings": lib.recordings,
                    "status": "missing" if name in catalogue.missing else "used",
                    "reason": catalogue.missing.get(name, ""),
                    "clips": sum(per_class.values()), "classes": len(per_class),
                    "clips_per_class": " ".join(f"{k}:{v}" for k, v in per_class.items())})
    return out


def write_metadata(root: Path, specs: list[ClipSpec], rows: list[dict],
                   catalogue: Catalogue | None = None) -> None:
    """The two FSDKaggle2018 CSVs (sorted by fname), demo_sources.csv and, with a catalogue,
    the library, shared-recording and dropped-voice tables."""
    import pandas as pd

    licence = {r["fname"]: LIBRARIES[r["library"]].licence for r in rows}
    table = pd.DataFrame([asdict(s) for s in specs]).assign(
        license=lambda t: t["fname"].map(licence), manually_verified=1).sort_values("fname")
    (root / META_DIR).mkdir(parents=True, exist_ok=True)
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    train[["fname", "label", "manually_verified", "freesound_id", "license"]].to_csv(
        root / META_DIR / TRAIN_CSV, index=False)
    test[["fname", "label", "usage", "freesound_id", "license"]].to_csv(
        root / META_DIR / TEST_CSV, index=False)
    pd.DataFrame(rows).sort_values("fname").to_csv(root / SOURCES_CSV, index=False)
    if catalogue is not None:
        pd.DataFrame(library_rows(catalogue, rows)).to_csv(root / LIBRARIES_CSV, index=False)
        catalogue.shared.to_csv(root / SHARED_CSV, index=False)
        pd.DataFrame(list(catalogue.dropped), columns=["library", "voice", "duplicate_of"]).to_csv(
            root / DROPPED_CSV, index=False)


def render_all(jobs: list[ClipJob], workers: int, progress: bool) -> Iterator[dict]:
    """Provenance rows in job order, rendered in ``workers`` processes (1: in this process)."""
    from helpers.progress import progress as progress_bar

    bar = progress_bar(total=len(jobs), desc="demo clips", unit="clip", disable=not progress)
    pool = None
    if workers > 1:  # "spawn": safe even with threads (Jupyter, TensorFlow) in this process
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        rows = pool.map(write_clip, jobs, chunksize=8) if pool else map(write_clip, jobs)
        for row in rows:
            yield row
            bar.update()
    finally:  # on an error or Ctrl-C, drop the queued clips instead of rendering them all
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def check_replaceable(out: Path) -> None:
    """Refuse to overwrite a folder that is not a demo build (``--out ~`` must not delete ~)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not ((out / STAMP).is_file() or (out / SOURCES_CSV).is_file()):
        raise FileExistsError(f"{out} exists and is not a demo dataset (no {STAMP} or "
                              f"{SOURCES_CSV}); choose an empty or new folder")


def build_demo(out: Path | None = None, config: DemoConfig | None = None, force: bool = False,
               progress: bool = True, workers: int = 1) -> Path:
    """Build (or reuse) the demo dataset at ``out`` (default ``data/demo``); returns the folder.

    A folder whose ``.complete`` stamp matches ``config`` is reused unless ``force``. The build
    goes to a hidden sibling folder that replaces ``out`` only once it is complete
    (:func:`helpers.files.atomic_folder`), so an interrupted build never looks complete and
    an older build stays until then. Same config, same bytes, whatever ``workers`` is;
    ``workers=2`` spawns processes, which re-import a calling script's ``__main__`` (guard it
    with ``if __name__ == "__main__":``); benchmarks/bench_demo.py times both.
    ``config`` defaults to :data:`DEMO`.
    Used in: ``python -m helpers data demo`` (``make demo``), benchmarks/bench_demo.py.
    """
    config = DEMO if config is None else config
    out = Path(out) if out is not None else paths.data_dir() / "demo"
    if not force and is_complete(out, config):
        print(f"demo dataset: reusing {out} (built with the same config; force=True rebuilds)")
        return out
    if (out / STAMP).exists() and not force:
        print(f"demo dataset: {out} was built with another config or version; rebuilding")
    check_replaceable(out)
    catalogue = load_catalogue(config.libraries, config.drop_duplicates, progress=progress)
    if not catalogue.libraries:
        raise RuntimeError("no sample library could be had: " + "; ".join(
            f"{k}: {v}" for k, v in catalogue.missing.items()))
    uncovered = [c for c in DEMO_CLASSES if not catalogue.libraries_of(c)]
    if uncovered:
        raise RuntimeError(f"no available library sounds {uncovered}; missing libraries: "
                           + "; ".join(f"{k}: {v}" for k, v in catalogue.missing.items()))
    for name, why in catalogue.missing.items():
        print(f"demo dataset: library {name} is missing ({why}); building without it")
    specs = clip_specs(config)
    if progress:
        print(f"demo dataset: rendering {len(specs)} clips of {len(DEMO_CLASSES)} classes from "
              f"{len(catalogue.libraries)} libraries ({', '.join(catalogue.libraries)}) into {out}")
    remove_leftovers(out)  # of a build that was killed outright (there is one build at a time)

    def fill(folder: Path) -> None:
        for split_dir in (AUDIO_TRAIN_DIR, AUDIO_TEST_DIR):
            (folder / split_dir).mkdir()
        jobs = [ClipJob(s, config, str(folder), catalogue.fonts,
                        {lib: catalogue.options[lib][s.label]
                         for lib in catalogue.libraries_of(s.label)}) for s in specs]
        write_metadata(folder, specs, list(render_all(jobs, workers, progress)), catalogue)
        write_json(folder / STAMP, stamp_contents(config, tuple(catalogue.missing)))

    return atomic_folder(out, fill)
