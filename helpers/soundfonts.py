"""Sample libraries as instruments: which sampled voice plays which class, and how.

Every library of :mod:`helpers.sources.libraries` plays through SoundFonts in General MIDI
layout. :data:`CLASS_VOICES` says which GM programs or drum keys honestly stand in for each
FSDKaggle2018 instrument class (:data:`OMITTED` and :data:`NOT_USED` record what was left out
and why). :func:`load_catalogue` reads each library's SoundFonts and lists, per library and
class, the *voice options* that really sound (a preset on the class's program, a drum kit
with the class's keys), with the hashes of the recordings each plays; duplicates across
libraries are dropped or marked (:mod:`helpers.sources.dedup`). :func:`plan_performance` draws
what one clip plays (voice, style, notes, tuning, vibrato) from one library's options and
:func:`render_performance` plays it with ``tinysoundfont``. The result is a dry rendering;
:func:`helpers.acoustics.simulate_recording` then puts it in a room.
Used in: helpers/demo.py (data/README.md lists the voices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data import INSTRUMENT_CLASSES
from helpers.sources.dedup import VoiceRecordings, deduplicate, recording_ids, shared_table
from helpers.sources.libraries import (
    LIBRARIES,
    Font,
    build_fonts,
    built_path,
    pip_package_dir,
)
from helpers.sources.sf2 import read_soundfont

# --------------------------------------------------------------------------------------------
# Which sound stands in for which class (the libraries themselves: helpers.sources.libraries)
# --------------------------------------------------------------------------------------------

# (SoundFont, kit, key) combinations whose sample is not the named drum (checked by name).
BAD_DRUM_KEYS: frozenset[tuple[str, int, int]] = frozenset({
    ("TimGM6mb", 24, 36),  # Electronic kit: key 36 layers a sine with an acoustic tom
    ("TimGM6mb", 40, 40),  # Brush kit: key 40 is an "Ocean Wave" effect, not a snare
})


@dataclass(frozen=True)
class Voice:
    """One honest way to sound a class: a GM program over a pitch range, or GM drum keys.

    ``program`` is 0-based (GM "Violin" 41 is 40); ``low``/``high`` are MIDI keys (60 = C4);
    ``drum_keys`` are GM percussion keys on the drum bank (then ``program`` is None);
    ``weight`` sets how often the voice is chosen among its class's voices.
    """

    name: str
    program: int | None = None
    low: int = 0
    high: int = 127
    drum_keys: tuple[int, ...] = ()
    styles: tuple[str, ...] = ("note", "phrase")
    vibrato: bool = False
    weight: float = 1.0  # relative share of the class's clips

    @property
    def is_drum(self) -> bool:
        return bool(self.drum_keys)


_CHORDAL = ("note", "phrase", "chords")
_DRUMS = ("hit", "pattern")

CLASS_VOICES: dict[str, tuple[Voice, ...]] = {
    "Acoustic_guitar": (Voice("Nylon-string guitar", 24, 40, 83, styles=_CHORDAL),
                        Voice("Steel-string guitar", 25, 40, 83, styles=_CHORDAL)),
    "Bass_drum": (Voice("Bass drum (GM keys 35, 36)", drum_keys=(35, 36), styles=_DRUMS),),
    "Cello": (Voice("Cello", 42, 36, 76, vibrato=True),),
    "Chime": (Voice("Tubular bells", 14, 60, 96, styles=("note", "phrase", "windchime"),
                    weight=0.7),
              Voice("Bell tree (GM key 84)", drum_keys=(84,), styles=("hit",), weight=0.3)),
    "Clarinet": (Voice("Clarinet", 71, 50, 91),),
    "Cowbell": (Voice("Cowbell (GM key 56)", drum_keys=(56,), styles=_DRUMS),),
    # Merlin's Contrabass switches to a cello sample above key 54, so the arco range stops there.
    "Double_bass": (Voice("Contrabass, bowed", 43, 28, 54, vibrato=True),
                    Voice("Acoustic bass, plucked", 32, 28, 55)),
    "Electric_piano": (Voice("Electric piano 1 (tine)", 4, 36, 96, styles=_CHORDAL, weight=0.45),
                       Voice("Electric piano 2 (FM)", 5, 36, 96, styles=_CHORDAL, weight=0.35),
                       Voice("Clavinet", 7, 36, 89, styles=_CHORDAL, weight=0.2)),
    "Flute": (Voice("Flute", 73, 60, 96, vibrato=True, weight=0.8),
              Voice("Piccolo", 72, 74, 103, vibrato=True, weight=0.2)),
    "Glockenspiel": (Voice("Glockenspiel", 9, 79, 108),),
    "Harmonica": (Voice("Harmonica", 22, 60, 93, styles=_CHORDAL, vibrato=True),),
    "Hi-hat": (Voice("Hi-hat closed/pedal/open (GM keys 42, 44, 46)", drum_keys=(42, 44, 46),
                     styles=_DRUMS),),
    "Oboe": (Voice("Oboe", 68, 58, 91, vibrato=True),),
    "Saxophone": (Voice("Soprano sax", 64, 56, 84, vibrato=True),
                  Voice("Alto sax", 65, 49, 80, vibrato=True),
                  Voice("Tenor sax", 66, 44, 75, vibrato=True),
                  Voice("Baritone sax", 67, 36, 68, vibrato=True)),
    "Snare_drum": (Voice("Snare drum (GM keys 38, 40)", drum_keys=(38, 40),
                         styles=("hit", "pattern", "roll")),),
    "Tambourine": (Voice("Tambourine (GM key 54)", drum_keys=(54,),
                         styles=("hit", "pattern", "roll")),),
    "Trumpet": (Voice("Trumpet", 56, 54, 86, vibrato=True, weight=0.7),
                Voice("Muted trumpet", 59, 54, 82, weight=0.3)),
    "Violin_or_fiddle": (Voice("Violin", 40, 55, 100, vibrato=True),),
}

OMITTED: dict[str, str] = {
    "Gong": "General MIDI has no gong program or percussion key, and neither SoundFont holds a "
            "gong or tam-tam sample; a synthetic gong would teach the model a fake sound.",
}
# GM programs we considered and left out, for the record (data/README.md repeats this).
NOT_USED: dict[str, str] = {
    "GM 110 Fiddle": "TimGM6mb plays it with its Violin samples (no new sound); Merlin with "
                     "viola samples (not a violin).",
    "GM 69 English horn, 41 Viola": "different instruments from Oboe and Violin in FSDKaggle2018.",
    "Orchestra drum kits (48)": "their keys 36 (TimGM6mb) and 42-46 (Merlin) are timpani.",
    "freepats' Trumpet (GM 56)": "its patch is a flugelhorn (the patch's own description).",
}
# (font, bank, program) presets left out of a class although the GM program matches.
NOT_USED_PRESETS: frozenset[tuple[str, int, int]] = frozenset({("freepats", 0, 56)})


# --------------------------------------------------------------------------------------------
# The catalogue: per library and class, the voice options that really sound
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VoiceOption:
    """One way a library sounds a class: a voice of :data:`CLASS_VOICES` on one preset of one
    of its SoundFonts, the keys that have a sample there, and the recordings it plays."""

    library: str
    font: str
    voice: Voice
    bank: int
    program: int
    keys: tuple[int, ...]
    preset: str = ""  # the SoundFont's own name for the preset
    recordings: frozenset[str] = frozenset()
    shares: frozenset[str] = frozenset()  # other libraries holding one of its recordings

    @property
    def name(self) -> str:
        """E.g. "Merlin 128:0 Standard (Snare_drum)": unique within a catalogue."""
        return (f"{self.font} {self.bank}:{self.program} {self.preset or self.voice.name} "
                f"({label_of(self)})")


@dataclass(frozen=True)
class Catalogue:
    """What the demo can render: SoundFont paths, voice options per library and class, and the
    deduplication's record (dropped duplicates, shared recordings, missing libraries)."""

    fonts: dict[str, str]  # font name -> .sf2 path
    options: dict[str, dict[str, tuple[VoiceOption, ...]]]  # library -> class -> options
    dropped: tuple[tuple[str, str, str], ...] = ()  # (library, voice, duplicate of)
    shared: pd.DataFrame = field(default_factory=pd.DataFrame)
    missing: dict[str, str] = field(default_factory=dict)  # library -> why it is missing
    skipped: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @property
    def libraries(self) -> tuple[str, ...]:
        return tuple(self.options)

    def libraries_of(self, label: str) -> tuple[str, ...]:
        """The libraries (in catalogue order) that sound ``label``."""
        return tuple(lib for lib, classes in self.options.items() if classes.get(label))

    def coverage(self) -> pd.DataFrame:
        """Voice options per class (rows) and library (columns); 0 where a class is absent."""
        table = pd.DataFrame({lib: {label: len(self.options[lib].get(label, ()))
                                    for label in CLASS_VOICES} for lib in self.options})
        return table.fillna(0).astype(int)


def _zone_keys(preset) -> set[int]:
    return {k for z in preset.zones for k in range(z.key_range[0], z.key_range[1] + 1)}


def _recordings(font: str, preset, keys: Sequence[int], playable: set[int]) -> frozenset[str]:
    """The samples a preset plays on ``keys``, as "font:index" (ids come later, across fonts)."""
    wanted = set(keys)
    return frozenset(f"{font}:{z.sample}" for z in preset.zones if z.sample in playable
                     and wanted & set(range(z.key_range[0], z.key_range[1] + 1)))


def font_options(font: Font, path: Path) -> list[VoiceOption]:
    """Every voice option one SoundFont offers for the demo's classes (see :class:`VoiceOption`).

    Melodic voices need the class's GM program on bank 0 (a built library: on any bank below
    128, one recording per bank) and keep the keys of the voice's range that a zone covers;
    drum voices need a kit of ``font.drum_kits`` (every kit if None) with one of the voice's
    keys covered and not in :data:`BAD_DRUM_KEYS`.
    """
    info = read_soundfont(path)
    playable = {x.index for x in info.samples if not x.is_rom and x.length > 0}
    presets = {(p.bank, p.program): p for p in info.presets}
    kits = font.drum_kits if font.drum_kits is not None else tuple(
        sorted(prog for bank, prog in presets if bank == font.kit_bank))
    options = []
    for voices in CLASS_VOICES.values():
        for voice in voices:
            if voice.is_drum:
                for kit in kits:
                    preset = presets.get((font.kit_bank, kit))
                    if preset is None:
                        continue
                    covered = _zone_keys(preset)
                    keys = tuple(k for k in voice.drum_keys if k in covered
                                 and (font.name, kit, k) not in BAD_DRUM_KEYS)
                    if keys:
                        options.append(VoiceOption(font.library, font.name, voice, font.kit_bank,
                                                   kit, keys, preset.name,
                                                   _recordings(font.name, preset, keys, playable)))
                continue
            if not font.gm_melodic:
                continue
            banks = sorted(b for b, prog in presets if prog == voice.program
                           and (b == 0 or (font.variant_banks and b < 128)))
            for bank in banks:
                if (font.name, bank, voice.program) in NOT_USED_PRESETS:
                    continue
                preset = presets[(bank, voice.program)]
                covered = _zone_keys(preset)
                keys = tuple(k for k in range(voice.low, voice.high + 1) if k in covered)
                if keys:
                    options.append(VoiceOption(font.library, font.name, voice, bank,
                                               int(voice.program), keys, preset.name,
                                               _recordings(font.name, preset, keys, playable)))
    return options


def load_catalogue(libraries: Sequence[str], drop_duplicates: bool = True,
                   progress: bool = True) -> Catalogue:
    """Fetch, build and read the SoundFonts of ``libraries`` and list their voice options.

    pip libraries are read where their package is installed; Debian libraries are fetched and
    unpacked (:func:`helpers.sources.debian.fetch_packages`) and GUS patches and sample files
    built into SoundFonts. A library that cannot be had is left out and named in
    ``Catalogue.missing``; one whose SoundFonts offer no voice likewise. With
    ``drop_duplicates``, voices whose recordings all appear in an earlier library's voices are
    dropped; voices sharing some recordings are marked (``shares``) either way.
    """
    from helpers.sources.debian import fetch_packages, sources_dir

    unknown = sorted(set(libraries) - set(LIBRARIES))
    if unknown:
        raise ValueError(f"unknown libraries {unknown}; known: {', '.join(LIBRARIES)}")
    packages: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for name in libraries:
        lib = LIBRARIES[name]
        if lib.origin == "pip":
            try:
                packages[lib.package] = pip_package_dir(lib.package)
            except FileNotFoundError as exc:
                missing[name] = str(exc)
    debian = [LIBRARIES[n].package for n in libraries if LIBRARIES[n].origin == "debian"]
    if debian:
        found, lost = fetch_packages(debian, progress=progress)
        packages.update(found)
        missing.update({n: lost[LIBRARIES[n].package] for n in libraries
                        if LIBRARIES[n].package in lost})
    reports = build_fonts({p: d for p, d in packages.items()
                           if any(LIBRARIES[n].package == p and LIBRARIES[n].origin == "debian"
                                  for n in libraries)}, sources_dir(), progress=progress)
    fonts: dict[str, str] = {}
    found_options: list[VoiceOption] = []
    for name in libraries:
        if name in missing:
            continue
        for font in LIBRARIES[name].fonts:
            folder = packages[LIBRARIES[name].package]
            path = built_path(sources_dir(), font) if font.build else folder / font.relpath
            fonts[font.name] = str(path)
            found_options += font_options(font, path)
    found_options = identify_recordings(found_options, fonts)
    records = [VoiceRecordings(o.library, label_of(o), o.name, o.recordings)
               for o in found_options]
    outcome = deduplicate(records, [n for n in libraries if n not in missing], drop_duplicates)
    kept = {v.name: v for v in outcome.kept}
    dropped = tuple((v.library, v.name, "; ".join(of)) for v, of in outcome.dropped)
    options: dict[str, dict[str, tuple[VoiceOption, ...]]] = {}
    for name in libraries:
        if name in missing:
            continue
        mine = [o for o in found_options if o.library == name and o.name in kept]
        shares = {o.name: kept[o.name].shares for o in mine}
        by_class: dict[str, tuple[VoiceOption, ...]] = {}
        for label in CLASS_VOICES:
            here = tuple(replace(o, shares=shares[o.name]) for o in mine if label_of(o) == label)
            if here:
                by_class[label] = here
        if by_class:
            options[name] = by_class
        else:
            missing[name] = "none of its SoundFonts' presets plays a demo class"
    return Catalogue(fonts, options, dropped, shared_table(records), missing,
                     {f: tuple(r.skipped) for f, r in reports.items() if r.skipped})


def identify_recordings(options: Sequence[VoiceOption],
                        fonts: dict[str, str]) -> list[VoiceOption]:
    """Replace each option's "font:index" samples by recording ids shared across fonts
    (:func:`helpers.sources.dedup.recording_ids`), so that copies count as one recording."""
    wanted: dict[str, set[int]] = {}
    for o in options:
        for key in o.recordings:
            font, index = key.rsplit(":", 1)
            wanted.setdefault(font, set()).add(int(index))
    pcm = {}
    for font, indices in wanted.items():
        info = read_soundfont(fonts[font])
        pool = info.pool()
        for i in indices:
            sample = info.samples[i]
            pcm[f"{font}:{i}"] = np.asarray(pool[sample.start: sample.end])
    ids = recording_ids(pcm)
    return [replace(o, recordings=frozenset(ids[k] for k in o.recordings)) for o in options]


def label_of(option: VoiceOption) -> str:
    """The class a voice option plays."""
    return next(label for label, voices in CLASS_VOICES.items() if option.voice in voices)



def source_table() -> list[dict[str, object]]:
    """The class -> source mapping as rows (class, source, GM program or keys, pitch range).

    Nothing in the package calls it: it gives the rows of the table in data/README.md, for a
    reader checking that table against the code.
    """
    rows: list[dict[str, object]] = []
    for label in INSTRUMENT_CLASSES:
        for v in CLASS_VOICES.get(label, ()):
            rows.append({"class": label, "source": v.name,
                         "gm": f"drum keys {list(v.drum_keys)}" if v.is_drum
                         else f"program {v.program}",
                         "keys": "" if v.is_drum else f"{v.low}-{v.high}",
                         "styles": ", ".join(v.styles), "weight": v.weight})
        if label in OMITTED:
            rows.append({"class": label, "source": "omitted: " + OMITTED[label], "gm": "",
                         "keys": "", "styles": "", "weight": 0.0})
    return rows


@cache
def _loaded_synth(sf2_path: str, sr: int) -> tuple:
    """A tinysoundfont synthesiser with the SoundFont loaded, made once per process."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sr)
    return synth, synth.sfload(sf2_path)


def preset_name(sf2_path: str, bank: int, program: int) -> str:
    """The SoundFont's own name for a preset, e.g. 'Steel Guitar PH' or 'TR 808'."""
    synth, sfid = _loaded_synth(sf2_path, 44100)
    return synth.sfpreset_name(sfid, bank, program) or ""


def fresh_synth(sf2_path: str, sr: int) -> tuple:
    """``(synth, sfid)`` in its just-loaded state: all channels reset, no voice sounding.

    Loading a SoundFont costs about a third of a clip, so each process keeps one per file;
    the reset makes every clip independent of the clips rendered before it (the
    determinism tests compare builds made with one and with two processes).
    """
    synth, sfid = _loaded_synth(sf2_path, sr)
    synth.soundfonts[sfid].reset()  # frees the channels, releases the voices quickly
    for _ in range(1000):  # let the quick releases finish
        if not np.frombuffer(synth.generate(512), dtype=np.float32).any():
            return synth, sfid
    raise RuntimeError(f"{sf2_path}: synthesiser still sounding after reset")


# --------------------------------------------------------------------------------------------
# Planning a clip: which sound, which notes, when
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Note:
    """One note: onset and held length in seconds (None: let it ring), MIDI key, velocity."""

    onset: float
    key: int
    velocity: int
    length: float | None = None


@dataclass(frozen=True)
class Performance:
    """What the synthesiser plays for one clip."""

    soundfont: str
    bank: int  # 0 melodic, 128 drums
    program: int  # GM program, or drum-kit preset on bank 128
    is_drum: bool
    style: str
    notes: tuple[Note, ...]
    seconds: float
    tuning: float = 0.0  # semitones
    vibrato_cents: float = 0.0
    vibrato_hz: float = 0.0


SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
    "pentatonic": (0, 2, 4, 7, 9), "blues": (0, 3, 5, 6, 7, 10), "chromatic": tuple(range(12)),
}
CHORDS: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10), "sus4": (0, 5, 7), "power": (0, 7, 12), "maj-open": (0, 7, 12, 16),
}


def clip_seconds(rng: np.random.Generator, style: str, min_seconds: float,
                 max_seconds: float) -> float:
    """A clip length skewed short like Freesound uploads: log-normal, clipped to
    ``[min_seconds, max_seconds]``."""
    median, spread = {"hit": (0.8, 0.6), "pattern": (3.0, 0.6), "roll": (2.5, 0.6)}.get(
        style, (2.0, 0.8))
    seconds = float(np.exp(rng.normal(np.log(median), spread)))
    return float(np.clip(seconds, min_seconds, max_seconds))


def lead_in(rng: np.random.Generator, seconds: float) -> float:
    """Leading silence: often almost none (a trimmed sample), sometimes up to a second."""
    if rng.random() < 0.5:
        return float(rng.uniform(0.0, min(0.03, 0.1 * seconds)))
    return float(rng.uniform(0.03, max(0.031, min(1.0, 0.25 * seconds))))


def scale_keys(rng: np.random.Generator, keys: np.ndarray) -> np.ndarray:
    """The keys of a random scale (random tonic) inside ``keys``."""
    scale = SCALES[str(rng.choice(list(SCALES), p=[0.3, 0.25, 0.2, 0.15, 0.1]))]
    tonic = int(rng.integers(12))
    inside = keys[np.isin((keys - tonic) % 12, scale)]
    return inside if len(inside) else keys


def melody(rng: np.random.Generator, pool: np.ndarray, n: int) -> list[int]:
    """A random walk over ``pool`` (mostly steps, some leaps), reflected at the ends."""
    i = int(rng.integers(len(pool)))
    steps = np.array([-4, -3, -2, -1, 0, 1, 2, 3, 4])
    weights = np.array([0.04, 0.08, 0.14, 0.2, 0.08, 0.2, 0.14, 0.08, 0.04])
    top, out = len(pool) - 1, []
    for _ in range(n):
        out.append(int(pool[i]))
        i = abs(i + int(rng.choice(steps, p=weights)))  # reflect at the bottom ...
        i = int(np.clip(top - abs(top - i), 0, top))  # ... and at the top
    return out


def rhythm(rng: np.random.Generator, span: float, max_notes: int = 16) -> list[tuple[float, float]]:
    """(onset, length) pairs filling ``span`` seconds at a random tempo and articulation."""
    beat = 60.0 / rng.uniform(60, 160)
    legato = rng.uniform(0.45, 1.0)
    values = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 3.0])
    t, out = 0.0, []
    while t < span and len(out) < max_notes:
        step = float(rng.choice(values, p=[0.1, 0.3, 0.3, 0.1, 0.15, 0.05])) * beat
        out.append((t, max(0.05, min(step * legato, span - t))))
        t += step
    return out


def velocity(rng: np.random.Generator, base: float, jitter: float = 10.0) -> int:
    """A MIDI velocity near ``base``, kept in 1-127."""
    return int(np.clip(round(base + rng.normal(0, jitter)), 1, 127))


def plan_note(rng: np.random.Generator, keys: np.ndarray, start: float, span: float) -> list[Note]:
    """One note held for most of the span."""
    key = int(rng.choice(keys))
    return [Note(start, key, velocity(rng, rng.uniform(45, 120), 0), span * rng.uniform(0.4, 0.95))]


def plan_phrase(rng: np.random.Generator, keys: np.ndarray, start: float, span: float) -> list[Note]:
    """A short melody (a few notes) on a random scale."""
    timing = rhythm(rng, span)
    base = rng.uniform(45, 115)
    pitches = melody(rng, scale_keys(rng, keys), len(timing))
    return [Note(start + t, k, velocity(rng, base), d) for (t, d), k in zip(timing, pitches, strict=True)]


def chord(rng: np.random.Generator, keys: np.ndarray) -> list[int]:
    """A chord (triad, seventh, power or open voicing) rooted in the lower part of ``keys``."""
    shape = CHORDS[str(rng.choice(list(CHORDS)))]
    roots = keys[keys <= max(keys.min(), keys.max() - 12)]
    root = int(rng.choice(roots))
    return [root + s for s in shape if root + s in set(keys.tolist())] or [root]


def plan_chords(rng: np.random.Generator, keys: np.ndarray, start: float, span: float) -> list[Note]:
    """One to four chords, strummed (notes a few ms apart, up or down) or struck at once."""
    n = int(rng.integers(1, 5)) if span > 1.0 else 1
    strum = rng.choice([0.0, rng.uniform(0.005, 0.04)])
    base, notes = rng.uniform(45, 115), []
    for j in range(n):
        t0, length = start + j * span / n, span / n * rng.uniform(0.6, 1.0)
        pitches = chord(rng, keys)
        if rng.random() < 0.5:
            pitches = pitches[::-1]
        notes += [Note(t0 + i * strum, k, velocity(rng, base, 6), length)
                  for i, k in enumerate(pitches)]
    return notes


def plan_windchime(rng: np.random.Generator, keys: np.ndarray, start: float,
                   span: float) -> list[Note]:
    """Wind-chime-like: a few fixed high pitches struck at random times, left to ring."""
    pool = scale_keys(rng, keys[keys >= min(72, keys.max())])
    tubes = rng.choice(pool, size=min(len(pool), int(rng.integers(4, 8))), replace=False)
    n = max(2, int(rng.poisson(rng.uniform(1.5, 5.0) * span)))
    onsets = np.sort(rng.uniform(0, span, size=min(n, 40)))
    return [Note(start + float(t), int(rng.choice(tubes)), velocity(rng, 65, 20))
            for t in onsets]


def plan_hit(rng: np.random.Generator, keys: tuple[int, ...], start: float,
             span: float) -> list[Note]:
    """A single drum hit, left to ring."""
    return [Note(start, int(rng.choice(keys)), velocity(rng, rng.uniform(40, 127), 0))]


def plan_pattern(rng: np.random.Generator, keys: tuple[int, ...], start: float,
                 span: float) -> list[Note]:
    """A groove: steps at a random tempo and subdivision, some skipped, accents on the beat."""
    per_beat = int(rng.choice([1, 2, 4]))
    step = 60.0 / rng.uniform(70, 180) / per_beat
    density, main = rng.uniform(0.35, 1.0), int(rng.choice(keys))
    base, notes = rng.uniform(50, 110), []
    for i in range(min(64, max(1, int(span / step)))):
        if i and rng.random() > density:
            continue
        key = main if rng.random() < 0.75 else int(rng.choice(keys))
        accent = 15 if i % per_beat == 0 else 0
        onset = start + max(0.0, i * step + rng.normal(0, 0.006))
        notes.append(Note(onset, key, velocity(rng, base + accent, 8)))
    return notes


def plan_roll(rng: np.random.Generator, keys: tuple[int, ...], start: float,
              span: float) -> list[Note]:
    """A roll or shake: fast repeated hits with a crescendo or decrescendo."""
    rate, key = rng.uniform(10, 25), int(rng.choice(keys))
    n = min(200, max(2, int(span * rate)))
    v0, v1 = rng.uniform(30, 120, size=2)
    return [Note(start + i / rate + abs(rng.normal(0, 0.004)), key,
                 velocity(rng, v0 + (v1 - v0) * i / n, 6)) for i in range(n)]


MELODIC_PLANS = {"note": plan_note, "phrase": plan_phrase, "chords": plan_chords,
                 "windchime": plan_windchime}
DRUM_PLANS = {"hit": plan_hit, "pattern": plan_pattern, "roll": plan_roll}


def plan_performance(rng: np.random.Generator, label: str, options: Sequence[VoiceOption], *,
                     min_seconds: float, max_seconds: float) -> Performance:
    """Pick voice, style, length, notes, tuning and vibrato for one clip of one library.

    ``options`` are the library's ways to sound ``label`` (:attr:`Catalogue.options`): a voice
    is drawn by weight among the voices that have one, then one of that voice's options (a drum
    kit, or a built library's recording), then the style and the notes. The clip lasts
    ``min_seconds`` to ``max_seconds`` (:class:`helpers.demo.DemoConfig` holds the demo's).
    """
    if not options:
        raise ValueError(f"no voice plays {label!r} in this library")
    return plan_voices(rng, CLASS_VOICES[label], options, min_seconds=min_seconds,
                       max_seconds=max_seconds)


def plan_voices(rng: np.random.Generator, voices: Sequence[Voice], options: Sequence[VoiceOption],
                *, min_seconds: float, max_seconds: float) -> Performance:
    """:func:`plan_performance` over any ``voices`` (with their ``options``), not only a class's:
    the same draws in the same order (voice by weight, option, style, length, lead-in, notes,
    tuning, vibrato). Used in: :func:`plan_performance`, helpers/unknowns.py (instruments
    outside the classes, which vary exactly as a class clip does)."""
    if not options:
        raise ValueError("no voice option to play")
    voices = [v for v in voices if any(o.voice == v for o in options)]
    weights = np.array([v.weight for v in voices])
    voice = voices[int(rng.choice(len(voices), p=weights / weights.sum()))]
    mine = [o for o in options if o.voice == voice]
    style = str(rng.choice(voice.styles))
    seconds = clip_seconds(rng, style, min_seconds, max_seconds)
    start = lead_in(rng, seconds)
    span = max(0.05, (seconds - start) * rng.uniform(0.6, 1.0))
    if voice.is_drum:
        rng.shuffle(mine)  # a random kit of the library
        option = mine[0]
        notes = DRUM_PLANS[style](rng, option.keys, start, span)
        return Performance(option.font, option.bank, option.program, True, style, tuple(notes),
                           seconds, tuning=float(rng.uniform(-3.0, 3.0)))
    option = mine[int(rng.integers(len(mine)))] if len(mine) > 1 else mine[0]
    notes = MELODIC_PLANS[style](rng, np.array(option.keys), start, span)
    vib = voice.vibrato and rng.random() < 0.7
    return Performance(option.font, option.bank, option.program, False, style, tuple(notes),
                       seconds, tuning=float(np.clip(rng.normal(0, 0.12), -0.35, 0.35)),
                       vibrato_cents=float(rng.uniform(5, 35)) if vib else 0.0,
                       vibrato_hz=float(rng.uniform(4.5, 7.0)) if vib else 0.0)


# --------------------------------------------------------------------------------------------
# Rendering the notes
# --------------------------------------------------------------------------------------------

BLOCK = 512  # samples between vibrato updates (11.6 ms at the 44.1 kHz render rate)
OVERSAMPLE = 2  # render at 2x the clip rate, then low-pass and decimate: no aliased partials


def note_cues(notes: tuple[Note, ...], sr: int, n: int) -> list[tuple[int, int, int, int]]:
    """Note on/off events as (sample, order, key, velocity), offs before ons at the same sample."""
    cues = []
    for note in notes:
        on = int(round(note.onset * sr))
        if on >= n:
            continue
        cues.append((on, 1, note.key, note.velocity))
        if note.length is not None:
            cues.append((min(n, on + max(1, int(round(note.length * sr)))), 0, note.key, 0))
    return sorted(cues)


def vibrato_wheel(pos: int, sr: int, cents: float, hz: float) -> int:
    """Pitch-wheel value (8192 = centre, +-8192 = +-2 semitones) for vibrato at sample ``pos``."""
    t = pos / sr
    depth = cents * min(1.0, t / 0.3) / 200.0 * 8191
    return int(round(8192 + depth * np.sin(2 * np.pi * hz * t)))


def render_performance(perf: Performance, sf2_path: str, sr: int) -> np.ndarray:
    """Play the notes through tinysoundfont; mono float32 at ``sr`` of exactly ``perf.seconds``.

    The synthesiser pitches samples up without filtering, so high notes alias; rendering at
    ``OVERSAMPLE * sr`` and decimating with an anti-aliasing filter removes most of that.
    """
    from scipy import signal

    n = int(round(perf.seconds * sr))
    mono = play(perf, sf2_path, OVERSAMPLE * sr, OVERSAMPLE * n)
    return signal.resample_poly(mono, 1, OVERSAMPLE)[:n].astype(np.float32)


def play(perf: Performance, sf2_path: str, sr: int, n: int) -> np.ndarray:
    """The synthesiser's raw output: ``n`` mono float32 samples at ``sr``."""
    synth, sfid = fresh_synth(sf2_path, sr)
    synth.program_select(0, sfid, perf.bank, perf.program, is_drums=perf.is_drum)
    synth.set_tuning(0, perf.tuning)
    stereo = memoryview(bytearray(n * 8))  # interleaved float32 L, R
    cues, pos, c = note_cues(perf.notes, sr, n), 0, 0
    while pos < n:
        while c < len(cues) and cues[c][0] <= pos:
            _, is_on, key, vel = cues[c]
            synth.noteon(0, key, vel) if is_on else synth.noteoff(0, key)
            c += 1
        if perf.vibrato_cents:
            synth.pitchbend(0, vibrato_wheel(pos, sr, perf.vibrato_cents, perf.vibrato_hz))
        stop = min(n, pos + BLOCK, cues[c][0] if c < len(cues) else n)
        synth.generate(stop - pos, buffer=stereo[pos * 8: stop * 8])
        pos = stop
    return np.frombuffer(stereo, dtype=np.float32).reshape(n, 2).mean(axis=1)
