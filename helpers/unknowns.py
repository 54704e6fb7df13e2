"""Real unknown sounds, held aside, and the measures that judge an out-of-distribution detector.

:func:`helpers.calibration.synthetic_unlike` checks the detector on sine tones and noise: easy
cases. The sounds it must really refuse are *other instruments*, and these are rendered here the
way the demo renders its 18 classes, with one difference only: the instrument. Each
:data:`UNKNOWN_VOICES` entry is a General MIDI program (a piano, an organ, a choir, a synth
pad, ...) or a set of GM percussion keys (toms, cymbals, congas) that no class of
:data:`helpers.soundfonts.CLASS_VOICES` uses and that :data:`helpers.soundfonts.NOT_USED` did
not set aside as too close to a class (viola, English horn, fiddle). A clip is planned by
:func:`helpers.soundfonts.plan_voices` (:func:`helpers.soundfonts.plan_performance`'s draw, over these voices),
rendered by :func:`helpers.soundfonts.render_performance` and put in a room by
:func:`helpers.acoustics.simulate_recording`, at the demo's sample rate and clip lengths.

**From what the demo fetched, nothing more.** :func:`locate_fonts` finds the SoundFonts where
``build_demo`` left them (pip packages; Debian packages unpacked and fonts built under
``data/sources``) and downloads or builds nothing: a library that is not there, or whose
SoundFont does not read, is skipped, named and counted (``unknowns_libraries.csv``), and the
``.complete`` stamp records it so a later build that has it rebuilds. The libraries are the
ones with General MIDI presets beyond the classes (:data:`UNKNOWN_LIBRARIES`); Sonic Pi's and
LMMS's built SoundFonts hold only the files chosen for the 18 classes.

**No class recording sneaks in.** A SoundFont may play a program with another program's samples
(TimGM6mb's Fiddle is its Violin). Every key of an unknown voice whose samples are a recording
that some class voice of any library on this machine plays
(:func:`helpers.soundfonts.identify_recordings`, which finds copies across files) is dropped and
listed in ``unknowns_dropped_keys.csv``; libraries not on this machine could not be checked and
the stamp names them. Sample names were read too: the AVL kits' keys that are not the GM drum
(:data:`NOT_THE_NAMED_DRUM`) are left out.

**Held aside.** Every clip's ``split`` is ``"test"``: nothing here may choose anything (a
threshold, a method, a model). Choices are made on known validation clips, or on
:func:`leave_one_class_out`, which makes unknowns out of the known classes themselves.

Layout of a build (default ``data/demo_unknowns``, written atomically like the demo)::

    audio/<8 hex>.wav          16-bit mono clips at the demo's rate
    unknowns.csv               fname, path, label, gm_name, gm, program (melodic) or kit
                               (drums), library, split, then how it was made (as demo_sources.csv)
    unknowns_libraries.csv     each library asked for: used or missing (and why), clips, voices
    unknowns_dropped_keys.csv  keys of unknown voices left out because they play a class recording
    .complete                  the config, written last

**Measures** (higher score = more unusual, as :class:`helpers.calibration.OODDetector`):
:func:`auroc` of known against unknown scores, :func:`flag_rate` at a threshold,
:func:`leave_one_class_out` (each known class in turn made the unknown; any detector factory)
and :func:`level_invariance` (the same clip at several levels: a level-free score does not
move).
Used in: notebooks/10_shipping.ipynb (planned: the detectors on real unknowns).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import paths
from helpers.acoustics import simulate_recording
from helpers.calibration import acceptance_threshold
from helpers.demo import DEMO, SILENT_PEAK, ClipSpec, clip_rng, provenance
from helpers.demo import FORMAT_VERSION as DEMO_FORMAT_VERSION
from helpers.files import atomic_folder, json_safe, remove_leftovers, write_json
from helpers.soundfonts import (
    CLASS_VOICES,
    Voice,
    VoiceOption,
    font_options,
    identify_recordings,
    plan_voices,
    preset_name,
    render_performance,
)
from helpers.sources.libraries import LIBRARIES, Font, built_path, pip_package_dir
from helpers.sources.sf2 import SoundFontError, read_soundfont

# Bump when a change here changes what is written (changes in helpers.demo, soundfonts or
# acoustics bump the demo's FORMAT_VERSION, which the stamp records too).
FORMAT_VERSION = 1
UNKNOWNS_DIR = "demo_unknowns"
AUDIO_DIR = "audio"
UNKNOWNS_CSV = "unknowns.csv"
LIBRARIES_CSV = "unknowns_libraries.csv"
DROPPED_CSV = "unknowns_dropped_keys.csv"
STAMP = ".complete"
SPLIT = "test"  # every unknown clip: held aside, scored once, never used for a choice

_CHORDAL = ("note", "phrase", "chords")
_DRUMS = ("hit", "pattern")

# label -> voice. Programs are 0-based (GM 1 "Acoustic Grand Piano" is 0), as in CLASS_VOICES.
UNKNOWN_VOICES: dict[str, Voice] = {
    "Acoustic_grand_piano": Voice("Acoustic Grand Piano", 0, 36, 96, styles=_CHORDAL),
    "Church_organ": Voice("Church Organ", 19, 36, 84, styles=_CHORDAL),
    "Accordion": Voice("Accordion", 21, 53, 89, styles=_CHORDAL),
    "String_ensemble": Voice("String Ensemble 1", 48, 36, 91, styles=_CHORDAL),
    "Choir_aahs": Voice("Choir Aahs", 52, 48, 79, styles=_CHORDAL),
    "Brass_section": Voice("Brass Section", 61, 41, 77, styles=_CHORDAL),
    "Lead_square": Voice("Lead 1 (square)", 80, 48, 96, vibrato=True),
    "Pad_new_age": Voice("Pad 1 (new age)", 88, 36, 84, styles=("note", "chords")),
    "Sitar": Voice("Sitar", 104, 48, 84),
    "Toms": Voice("Toms (GM keys 41, 43, 45, 47, 48, 50)", drum_keys=(41, 43, 45, 47, 48, 50),
                  styles=("hit", "pattern", "roll")),
    "Cymbals": Voice("Crash, ride, Chinese and splash cymbals (GM keys 49, 51, 52, 55, 57, 59)",
                     drum_keys=(49, 51, 52, 55, 57, 59), styles=("hit", "pattern", "roll")),
    "Congas_bongos": Voice("Bongos and congas (GM keys 60-64)", drum_keys=(60, 61, 62, 63, 64),
                           styles=_DRUMS),
}
# The libraries whose SoundFonts hold General MIDI presets or kit keys beyond the classes.
UNKNOWN_LIBRARIES: tuple[str, ...] = ("TimGM6mb", "Merlin", "A320U", "AVL", "freepats")
# (SoundFont, kit, key) whose sample is not the drum the GM key names (read from the sample
# names): the AVL kits put a hi-hat swish on 48, a crash choke on 50, a ride on 60, a maraca on 61.
NOT_THE_NAMED_DRUM: frozenset[tuple[str, int, int]] = frozenset(
    (font, 0, key) for font in ("AVL-RedZeppelin", "AVL-BlackPearl") for key in (48, 50, 60, 61))
# GM programs that soundfonts.NOT_USED set aside as near a class (41 Viola, 69 English horn,
# 110 Fiddle): not unknowns either, a model could call them Violin or Oboe with some right.
NEAR_CLASS_PROGRAMS: frozenset[int] = frozenset({41, 69, 110})


def class_programs() -> frozenset[int]:
    """The GM programs (0-based) some class of :data:`helpers.soundfonts.CLASS_VOICES` plays."""
    return frozenset(v.program for vs in CLASS_VOICES.values() for v in vs if not v.is_drum)


def class_drum_keys() -> frozenset[int]:
    """The GM percussion keys some class of :data:`helpers.soundfonts.CLASS_VOICES` plays."""
    return frozenset(k for vs in CLASS_VOICES.values() for v in vs for k in v.drum_keys)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnknownsConfig:
    """Everything that shapes the unknowns set's content (the stamp stores it).

    ``clips_per_voice`` clips of each voice of ``voices`` are dealt in turn to the libraries of
    ``libraries`` that sound it (so a voice with three libraries gets 4 clips from each of 12).
    Sample rate and clip lengths default to the demo's (:data:`helpers.demo.DEMO`).
    """

    clips_per_voice: int = 12
    seed: int = 0
    voices: tuple[str, ...] = tuple(UNKNOWN_VOICES)
    libraries: tuple[str, ...] = UNKNOWN_LIBRARIES
    sample_rate: int = DEMO.sample_rate
    min_seconds: float = DEMO.min_seconds
    max_seconds: float = DEMO.max_seconds

    def __post_init__(self) -> None:
        if self.clips_per_voice < 1:
            raise ValueError(f"clips_per_voice must be >= 1, got {self.clips_per_voice}")
        bad = sorted(set(self.voices) - set(UNKNOWN_VOICES))
        if bad or not self.voices:
            raise ValueError(f"voices must name some of {', '.join(UNKNOWN_VOICES)}; got "
                             f"{list(self.voices)}")
        bad = sorted(set(self.libraries) - set(LIBRARIES))
        if bad or not self.libraries:
            raise ValueError(f"libraries must name some of {', '.join(LIBRARIES)}; got "
                             f"{list(self.libraries)}")
        if not 0.1 <= self.min_seconds <= self.max_seconds:
            raise ValueError(f"need 0.1 <= min_seconds <= max_seconds, got "
                             f"{self.min_seconds}, {self.max_seconds}")
        if not 8000 <= self.sample_rate <= 96000:
            raise ValueError(f"sample_rate must be in [8000, 96000] Hz, got {self.sample_rate}")


# --------------------------------------------------------------------------------------------
# Where the demo left its SoundFonts, and what they offer beyond the classes
# --------------------------------------------------------------------------------------------

def font_file(font: Font) -> Path:
    """The SoundFont file of ``font`` where ``build_demo`` leaves it (no download, no build).

    Raises FileNotFoundError with what to run when it is not there.
    """
    from helpers.sources.debian import is_unpacked, sources_dir

    lib = LIBRARIES[font.library]
    if font.build:
        path = built_path(sources_dir(), font)
    elif lib.origin == "pip":
        path = pip_package_dir(lib.package) / font.relpath
    else:
        if not is_unpacked(lib.package):
            raise FileNotFoundError(
                f"Debian package {lib.package} is not unpacked under {sources_dir()}; "
                f"`python -m helpers data demo` fetches it (this build downloads nothing)")
        path = sources_dir() / lib.package / font.relpath
    if not path.is_file():
        raise FileNotFoundError(f"SoundFont {path} of library {font.library} is missing; "
                                f"`python -m helpers data demo` makes it")
    return path


def locate_fonts(libraries: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``(font name -> .sf2 path, library -> why it is missing)`` for ``libraries``.

    A library is missing when one of its SoundFonts is not where the demo leaves it or does
    not read as a SoundFont 2 file; nothing is downloaded or built.
    """
    fonts: dict[str, str] = {}
    missing: dict[str, str] = {}
    for name in libraries:
        found = {}
        try:
            for font in LIBRARIES[name].fonts:
                path = font_file(font)
                read_soundfont(path)  # raises SoundFontError for a damaged file
                found[font.name] = str(path)
        except (FileNotFoundError, SoundFontError) as exc:
            missing[name] = " ".join(str(exc).split())
            continue
        fonts.update(found)
    return fonts, missing


def _keys_of(preset) -> set[int]:
    return {k for z in preset.zones for k in range(z.key_range[0], z.key_range[1] + 1)}


def voice_key_options(font: Font, path: str | Path, voices: dict[str, Voice]) -> list[VoiceOption]:
    """Every (voice, preset, key) of ``voices`` that ``font`` sounds, one option per key, with
    the samples ("font:index") that key plays.

    The same presets the demo would use for a class voice (:func:`helpers.soundfonts.font_options`):
    melodic voices on their GM program on bank 0 (a built font's variant banks too) if the font
    is General MIDI; drum voices on the font's kits (``font.drum_kits``, every kit if None),
    without the keys of :data:`NOT_THE_NAMED_DRUM`.
    """
    info = read_soundfont(path)
    playable = {x.index for x in info.samples if not x.is_rom and x.length > 0}
    presets = {(p.bank, p.program): p for p in info.presets}
    kits = font.drum_kits if font.drum_kits is not None else tuple(
        sorted(prog for bank, prog in presets if bank == font.kit_bank))
    places: list[tuple[Voice, int, int, tuple[int, ...]]] = []  # voice, bank, program, keys
    for voice in voices.values():
        if voice.is_drum:
            places += [(voice, font.kit_bank, kit, tuple(
                k for k in voice.drum_keys if (font.name, kit, k) not in NOT_THE_NAMED_DRUM))
                for kit in kits]
        elif font.gm_melodic:
            banks = sorted(b for b, prog in presets if prog == voice.program
                           and (b == 0 or (font.variant_banks and b < 128)))
            places += [(voice, b, int(voice.program), tuple(range(voice.low, voice.high + 1)))
                       for b in banks]
    options = []
    for voice, bank, program, keys in places:
        preset = presets.get((bank, program))
        if preset is None:
            continue
        covered = _keys_of(preset)
        for key in keys:
            if key not in covered:
                continue
            samples = frozenset(f"{font.name}:{z.sample}" for z in preset.zones
                                if z.sample in playable and z.key_range[0] <= key <= z.key_range[1])
            if samples:
                options.append(VoiceOption(font.library, font.name, voice, bank, program,
                                           (key,), preset.name, samples))
    return options


@dataclass(frozen=True)
class UnknownCatalogue:
    """What the unknowns set can render: SoundFont paths, voice options per library and voice
    label, the keys dropped because they play a class recording, the missing libraries, and
    the libraries whose class recordings could not be checked (not on this machine)."""

    fonts: dict[str, str]
    options: dict[str, dict[str, tuple[VoiceOption, ...]]]  # library -> label -> options
    dropped: pd.DataFrame = field(default_factory=pd.DataFrame)
    missing: dict[str, str] = field(default_factory=dict)
    unchecked: tuple[str, ...] = ()

    def libraries_of(self, label: str, order: Sequence[str]) -> tuple[str, ...]:
        """The libraries of ``order`` that sound ``label``, in that order."""
        return tuple(lib for lib in order if self.options.get(lib, {}).get(label))


def load_unknown_catalogue(libraries: Sequence[str], voices: Sequence[str],
                           progress: bool = True) -> UnknownCatalogue:
    """Locate ``libraries`` (:func:`locate_fonts`), list the keys each sounds of ``voices``,
    and drop every key whose samples are a recording that a class voice plays in any library
    found on this machine (all of :data:`helpers.sources.libraries.LIBRARIES` are checked,
    not only ``libraries``; those not found are ``unchecked``).
    """
    wanted = {label: UNKNOWN_VOICES[label] for label in voices}
    fonts, missing = locate_fonts(libraries)
    check_fonts, unchecked = locate_fonts([n for n in LIBRARIES if n not in libraries])
    check_fonts |= fonts
    unchecked |= missing
    class_opts: list[VoiceOption] = []
    key_opts: list[VoiceOption] = []
    for lib in LIBRARIES.values():
        for font in lib.fonts:
            if font.name not in check_fonts:
                continue
            class_opts += font_options(font, check_fonts[font.name])
            if lib.name in libraries and lib.name not in missing:
                key_opts += voice_key_options(font, check_fonts[font.name], wanted)
    if progress:
        print(f"unknowns: {len(key_opts)} (voice, preset, key) candidates; checking them against "
              f"the recordings of {len(class_opts)} class voices")
    identified = identify_recordings(class_opts + key_opts, check_fonts)
    taken = frozenset().union(*(o.recordings for o in identified[:len(class_opts)]))
    label = {v: k for k, v in wanted.items()}
    kept: dict[tuple, list[int]] = {}
    dropped = []
    for o in identified[len(class_opts):]:
        place = (o.library, label[o.voice], o.font, o.bank, o.program, o.preset)
        kept.setdefault(place, [])
        if o.recordings & taken:
            dropped.append(dict(zip(("library", "label", "soundfont", "bank", "program",
                                     "preset"), place)) | {"key": o.keys[0]})
        else:
            kept[place].append(o.keys[0])
    options: dict[str, dict[str, list[VoiceOption]]] = {}
    for (lib, lab, font, bank, program, preset), keys in kept.items():
        if keys:
            options.setdefault(lib, {}).setdefault(lab, []).append(VoiceOption(
                lib, font, wanted[lab], bank, program, tuple(keys), preset))
    for name in libraries:
        if name not in missing and name not in options:
            missing[name] = "none of its SoundFonts' presets plays an unknown voice"
    return UnknownCatalogue(
        fonts, {lib: {lab: tuple(opts) for lab, opts in by.items()} for lib, by in options.items()},
        pd.DataFrame(dropped, columns=["library", "label", "soundfont", "bank", "program",
                                       "preset", "key"]), missing, tuple(sorted(unchecked)))


# --------------------------------------------------------------------------------------------
# One clip: plan, render, record (the demo's machinery)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnknownClip:
    """Who an unknown clip is: voice label, index within the voice, library, file name."""

    label: str
    index: int
    library: str
    fname: str


def _fname(seed: int, label: str, index: int, salt: int = 0) -> str:
    digest = hashlib.sha256(f"unknowns/{seed}/{label}/{index}/{salt}".encode()).hexdigest()
    return digest[:8] + ".wav"


def clip_list(config: UnknownsConfig, catalogue: UnknownCatalogue) -> list[UnknownClip]:
    """The clips of a build: per voice, ``clips_per_voice`` dealt in turn to its libraries."""
    clips, seen = [], set()
    for label in config.voices:
        libs = catalogue.libraries_of(label, config.libraries)
        if not libs:
            continue
        for i in range(config.clips_per_voice):
            salt, fname = 0, _fname(config.seed, label, i)
            while fname in seen:  # a 32-bit hash collision: rehash deterministically
                salt += 1
                fname = _fname(config.seed, label, i, salt)
            seen.add(fname)
            clips.append(UnknownClip(label, i, libs[i % len(libs)], fname))
    return clips


def make_clip(clip: UnknownClip, config: UnknownsConfig, fonts: dict[str, str],
              options: tuple[VoiceOption, ...]) -> tuple[np.ndarray, dict]:
    """The audio (mono float64, peak < 0 dBFS) and the CSV row of one clip, as
    :func:`helpers.demo.make_clip` makes a class clip (a silent rendering is re-planned)."""
    rng = clip_rng(config.seed, "unknown:" + clip.label, clip.index)
    voice = UNKNOWN_VOICES[clip.label]
    for replans in range(10):
        perf = plan_voices(rng, [voice], options, min_seconds=config.min_seconds,
                          max_seconds=config.max_seconds)
        dry = render_performance(perf, fonts[perf.soundfont], config.sample_rate)
        if np.max(np.abs(dry)) > SILENT_PEAK:
            audio, chain = simulate_recording(dry, rng, config.sample_rate)
            spec = ClipSpec(clip.label, clip.index, SPLIT, clip.fname, 0)
            row = provenance(spec, perf, replans)
            gm = (f"drum keys {' '.join(map(str, voice.drum_keys))}" if voice.is_drum
                  else f"program {voice.program}")
            head = {"fname": clip.fname, "path": f"{AUDIO_DIR}/{clip.fname}",
                    "label": clip.label, "gm_name": voice.name, "gm": gm,
                    "program": None if perf.is_drum else row["program"],
                    "kit": row.pop("program") if perf.is_drum else None,
                    "library": clip.library, "split": SPLIT,
                    "preset": preset_name(fonts[perf.soundfont], perf.bank, perf.program)}
            return audio, head | row | chain
    raise RuntimeError(f"{clip.label} #{clip.index}: 10 silent renderings in a row")


@dataclass(frozen=True)
class UnknownJob:
    """A picklable unit of work: one clip, the config, the folder and what it may play."""

    clip: UnknownClip
    config: UnknownsConfig
    folder: str
    fonts: dict[str, str]
    options: tuple[VoiceOption, ...]


def write_clip(job: UnknownJob) -> dict:
    """Render one clip, write it as 16-bit PCM WAV, return its CSV row."""
    import soundfile as sf

    audio, row = make_clip(job.clip, job.config, job.fonts, job.options)
    sf.write(Path(job.folder) / AUDIO_DIR / job.clip.fname, audio, job.config.sample_rate,
             subtype="PCM_16")
    return row


def _render_all(jobs: list[UnknownJob], workers: int, progress: bool) -> Iterator[dict]:
    from helpers.progress import progress as progress_bar

    bar = progress_bar(total=len(jobs), desc="unknown clips", unit="clip", disable=not progress)
    pool = None
    if workers > 1:  # "spawn", as helpers.demo.render_all
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        rows = pool.map(write_clip, jobs, chunksize=4) if pool else map(write_clip, jobs)
        for row in rows:
            yield row
            bar.update()
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


# --------------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------------

def stamp_contents(config: UnknownsConfig, missing: Sequence[str] = (),
                   unchecked: Sequence[str] = ()) -> dict:
    """What ``.complete`` holds: the config, both format versions, the voices, and the
    libraries that could not be had or checked (a later build that has them rebuilds)."""
    stamp = {"config": json_safe(asdict(config)), "format_version": FORMAT_VERSION,
             "demo_format_version": DEMO_FORMAT_VERSION,
             "voices": {k: json_safe(asdict(UNKNOWN_VOICES[k])) for k in config.voices}}
    if missing:
        stamp["missing_libraries"] = sorted(missing)
    if unchecked:
        stamp["unchecked_libraries"] = sorted(unchecked)
    return stamp


def is_complete(root: Path, config: UnknownsConfig) -> bool:
    """True if ``root`` holds a finished build of exactly this config, made with every library
    that this machine has now (one built without a library that has appeared since is not)."""
    try:
        stamp = json.loads((Path(root) / STAMP).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict):
        return False
    lacking = set(stamp.get("missing_libraries", [])) | set(stamp.get("unchecked_libraries", []))
    if not lacking <= set(LIBRARIES):
        return False
    base = {k: v for k, v in stamp.items() if k not in ("missing_libraries",
                                                          "unchecked_libraries")}
    if base != stamp_contents(config):
        return False
    found, _ = locate_fonts(sorted(lacking))  # a library that has appeared since: rebuild
    return not found


def library_rows(config: UnknownsConfig, catalogue: UnknownCatalogue,
                 rows: list[dict]) -> list[dict]:
    """unknowns_libraries.csv: each library asked for, used or missing, clips and voices."""
    clips = Counter((r["library"], r["label"]) for r in rows)
    out = []
    for name in config.libraries:
        per_voice = {lab: clips[(name, lab)] for lab in config.voices if clips[(name, lab)]}
        out.append({"library": name, "status": "missing" if name in catalogue.missing else "used",
                    "reason": catalogue.missing.get(name, ""), "clips": sum(per_voice.values()),
                    "voices": len(per_voice),
                    "clips_per_voice": " ".join(f"{k}:{v}" for k, v in per_voice.items())})
    return out


def default_root() -> Path:
    """``data/demo_unknowns`` (follows ``HELPERS_DATA_DIR``)."""
    return paths.data_dir() / UNKNOWNS_DIR


def build_unknowns(out: Path | None = None, config: UnknownsConfig | None = None,
                   force: bool = False, progress: bool = True, workers: int = 1) -> Path:
    """Build (or reuse) the unknowns set at ``out`` (default ``data/demo_unknowns``).

    Like :func:`helpers.demo.build_demo`: a folder whose stamp matches ``config`` is reused
    unless ``force``; the build fills a hidden sibling that replaces ``out`` once complete
    (:func:`helpers.files.atomic_folder`); same config, same bytes whatever ``workers`` is.
    Libraries missing on this machine are skipped with a message and counted in
    ``unknowns_libraries.csv``; none at all raises RuntimeError.
    """
    config = UnknownsConfig() if config is None else config
    out = Path(out) if out is not None else default_root()
    if not force and is_complete(out, config):
        if progress:
            print(f"unknowns: reusing {out} (built with the same config; force=True rebuilds)")
        return out
    if out.exists() and any(out.iterdir()) and not (
            (out / STAMP).is_file() or (out / UNKNOWNS_CSV).is_file()):
        raise FileExistsError(f"{out} exists and is not an unknowns set (no {STAMP} or "
                              f"{UNKNOWNS_CSV}); choose an empty or new folder")
    catalogue = load_unknown_catalogue(config.libraries, config.voices, progress=progress)
    for name, why in catalogue.missing.items():
        print(f"unknowns: library {name} is skipped ({why})")
    others = sorted(set(catalogue.unchecked) - set(catalogue.missing))
    if others and progress:
        print(f"unknowns: the class recordings of {', '.join(others)} are not on this machine, "
              "so unknown keys are not checked against them")
    clips = clip_list(config, catalogue)
    if not clips:
        raise RuntimeError("no library could sound an unknown voice: " + "; ".join(
            f"{k}: {v}" for k, v in catalogue.missing.items()))
    if progress:
        print(f"unknowns: rendering {len(clips)} clips of {len(set(c.label for c in clips))} "
              f"voices from {len(catalogue.options)} libraries into {out}")
    remove_leftovers(out)

    def fill(folder: Path) -> None:
        (folder / AUDIO_DIR).mkdir()
        jobs = [UnknownJob(c, config, str(folder), catalogue.fonts,
                           catalogue.options[c.library][c.label]) for c in clips]
        rows = list(_render_all(jobs, workers, progress))
        pd.DataFrame(rows).sort_values("fname").to_csv(folder / UNKNOWNS_CSV, index=False)
        pd.DataFrame(library_rows(config, catalogue, rows)).to_csv(folder / LIBRARIES_CSV,
                                                                   index=False)
        catalogue.dropped.to_csv(folder / DROPPED_CSV, index=False)
        write_json(folder / STAMP, stamp_contents(config, tuple(catalogue.missing),
                                                  catalogue.unchecked))

    return atomic_folder(out, fill)


def load_unknowns(root: Path | None = None) -> pd.DataFrame:
    """The clips of a finished build (``unknowns.csv``) with ``path`` made absolute."""
    root = Path(root) if root is not None else default_root()
    if not (root / STAMP).is_file():
        raise FileNotFoundError(f"{root} holds no finished unknowns set; build it with "
                                "helpers.unknowns.build_unknowns()")
    table = pd.read_csv(root / UNKNOWNS_CSV)
    return table.assign(path=[str(root / p) for p in table["path"]])


# --------------------------------------------------------------------------------------------
# Measures: how well a score separates knowns from unknowns
# --------------------------------------------------------------------------------------------

def _scores(values, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"{what} must be a non-empty array of finite numbers")
    return values


def auroc(known_scores, unknown_scores) -> float:
    """Area under the ROC curve of telling unknown clips from known ones by their OOD score
    (higher = more unusual): the probability that a random unknown clip scores above a random
    known one, ties counting half. 1 separates perfectly, 0.5 is chance, below 0.5 is reversed.
    """
    from sklearn.metrics import roc_auc_score

    known = _scores(known_scores, "known_scores")
    unknown = _scores(unknown_scores, "unknown_scores")
    truth = np.r_[np.zeros(len(known)), np.ones(len(unknown))]
    return float(roc_auc_score(truth, np.r_[known, unknown]))


def flag_rate(scores, threshold: float) -> float:
    """The share of clips flagged as unlike any class: score above ``threshold`` (a clip at the
    threshold is accepted, as :meth:`helpers.calibration.OODDetector.accepts`)."""
    return float(np.mean(_scores(scores, "scores") > float(threshold)))


def leave_one_class_out(features, labels, fit_and_score: Callable, *, is_train=None,
                        held_out_fraction: float = 0.25, seed: int = 0,
                        class_names: Sequence[str] | None = None,
                        accept: float = 0.95) -> pd.DataFrame:
    """Each known class in turn made the unknown: one row per class with its AUROC.

    ``features`` ``(n, d)`` (or clip probabilities: whatever the detector scores), ``labels``
    ``(n,)`` integer classes (``class_names[k]`` names class k in the table). ``fit_and_score(train_features, train_labels)`` fits a detector
    on the other classes' training rows (labels renumbered 0..K-2) and returns a function
    ``scores = score(features)`` (higher = more unusual). For class k: the detector is fitted
    on the training rows of the other classes and scores their held-out rows (the knowns) and
    every row of k (the unknowns, never seen in the fit). ``is_train`` ``(n,)`` bool says which
    rows train; None: a stratified ``held_out_fraction`` per class is held out (``seed``).

    Columns: class, n_train, n_known, n_unknown, auroc, and flagged: the share of k's rows
    above the threshold that accepts ``accept`` of the held-out knowns
    (:func:`helpers.calibration.acceptance_threshold`; 1 - flagged is the usual
    "false positive rate at 95 % true positive rate").
    """
    features = np.asarray(features)
    labels = np.asarray(labels)
    if labels.shape != (len(features),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer classes of shape ({len(features)},)")
    classes = np.unique(labels)
    if len(classes) < 3:
        raise ValueError("need at least 3 classes (2 known ones left for each fold)")
    if is_train is None:
        if not 0 < held_out_fraction < 1:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
        rng = np.random.default_rng(seed)
        is_train = np.ones(len(labels), dtype=bool)
        for k in classes:
            rows = rng.permutation(np.flatnonzero(labels == k))
            is_train[rows[:max(1, round(held_out_fraction * len(rows)))]] = False
    is_train = np.asarray(is_train, dtype=bool)
    if is_train.shape != labels.shape:
        raise ValueError(f"is_train must be ({len(labels)},) booleans")
    names = list(class_names) if class_names is not None else None
    if names is not None and len(names) <= int(classes.max()):
        raise ValueError(f"class_names needs a name for every label up to {int(classes.max())}")
    out = []
    for k in classes:
        others = labels != k
        train, known = others & is_train, others & ~is_train
        if not known.any() or len(np.unique(labels[train])) < len(classes) - 1:
            raise ValueError(f"leaving out class {k}: every other class needs training rows "
                             "and some held-out rows must remain")
        renumber = np.searchsorted(np.unique(labels[train]), labels[train])
        score = fit_and_score(features[train], renumber)
        known_scores = np.asarray(score(features[known]), dtype=np.float64)
        unknown_scores = np.asarray(score(features[labels == k]), dtype=np.float64)
        threshold = acceptance_threshold(known_scores, accept)
        out.append({"class": names[int(k)] if names is not None else str(k),
                    "n_train": int(train.sum()),
                    "n_known": int(known.sum()), "n_unknown": int((labels == k).sum()),
                    "auroc": auroc(known_scores, unknown_scores),
                    "flagged": flag_rate(unknown_scores, threshold)})
    return pd.DataFrame(out)


def level_invariance(score_fn: Callable, y, sample_rate: int,
                     levels_db: Sequence[float] = (0.0, -20.0, -40.0)) -> pd.DataFrame:
    """The same clip scored at several levels: ``score_fn(y * gain, sample_rate)`` -> float.

    ``levels_db`` are gains relative to ``y`` as given (0 = unchanged). Columns: level_db,
    peak_dbfs, score, change (score minus the score at the first level). A score that does
    not depend on level (a classifier fed level-normalised features) changes by nothing; one
    that does will flag a quiet known clip, or accept a loud unknown one.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or len(y) == 0 or not np.all(np.isfinite(y)) or not np.any(y):
        raise ValueError("y must be a non-silent finite mono waveform")
    rows = []
    for db in levels_db:
        scaled = (y * 10.0 ** (float(db) / 20.0)).astype(np.float32)
        rows.append({"level_db": float(db),
                     "peak_dbfs": float(20 * np.log10(np.max(np.abs(scaled)))),
                     "score": float(score_fn(scaled, sample_rate))})
    table = pd.DataFrame(rows)
    return table.assign(change=table["score"] - table["score"].iloc[0])
