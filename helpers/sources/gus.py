"""Gravis UltraSound patches (``.pat``) read, and the TiMidity config mapping them to GM.

The ``freepats`` library (a Debian package in the demo set) ships its instruments as GUS
patches: one instrument per file, a few sampled notes each with the key range it covers, its
root pitch and its loop. :func:`read_patch` reads one with numpy and ``struct`` alone (no
TiMidity, no native code) so the samples can be converted to SoundFont zones;
:func:`read_timidity_cfg` reads which patch file plays each General MIDI program (bank 0) and
drum key (drumset 0), and :func:`resolve` finds that file under an unpacked copy. A patch that
does not parse raises :class:`PatchError` naming the file and the problem.

Key ranges follow TiMidity: a sample plays the keys whose equal-tempered pitch (TiMidity's
table in milli-Hz) lies within its low..high frequencies, so neighbouring samples whose
frequency ranges touch get key ranges that neither overlap nor leave gaps.
Used in: the demo set's freepats instruments (converted to SoundFont zones).
"""

from __future__ import annotations

import bisect
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGICS: tuple[bytes, ...] = (b"GF1PATCH110\0ID#000002\0", b"GF1PATCH100\0ID#000002\0")

# Little-endian layouts of the four headers; struct.calcsize gives 129, 63, 47 and 96 bytes.
_HEADER = struct.Struct("<22s60sBBBHHI36s")   # magic, description, instruments, voices,
                                              # channels, waveforms, master volume, data size
_INSTRUMENT = struct.Struct("<H16sIB40s")     # id, name, size, layers
_LAYER = struct.Struct("<BBIB40s")            # previous, id, size, samples
_SAMPLE = struct.Struct("<7sBIIIHIIIhB6s6s3s3sBhH36s")  # see _read_sample

MODE_16BIT, MODE_UNSIGNED, MODE_LOOP, MODE_BIDIRECTIONAL = 1, 2, 4, 8
MODE_BACKWARD, MODE_SUSTAIN, MODE_ENVELOPE, MODE_FAST_RELEASE = 16, 32, 64, 128

# TiMidity's freq_table: the pitch of MIDI key k in milli-Hz, rounded to an integer.
_KEY_MILLIHZ: tuple[int, ...] = tuple(round(440_000 * 2 ** ((k - 69) / 12)) for k in range(128))


class PatchError(ValueError):
    """A patch (or config) file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True, eq=False)  # eq=False: field-wise == is ambiguous for numpy arrays
class PatchSample:
    """One sampled note of a patch.

    ``data`` is mono float32 in [-1, 1) (8-bit and unsigned data converted; data stored backward
    is reversed, with its loop mirrored). ``loop`` is ``(start, end)`` in sample indices, end
    exclusive, or None when the looping bit is off. ``low_key``..``high_key`` are the MIDI keys
    the sample plays (``low_key > high_key`` when no key's pitch falls in its range);
    ``root_key`` plus ``correction_cents`` is its recorded pitch. ``balance`` is 0 (left) to 15
    (right), 7 the centre; ``scale_factor`` is 1024 for one semitone per key; ``modes`` holds the
    raw mode bits (``MODE_*``).
    """

    name: str
    data: np.ndarray
    rate: int
    loop: tuple[int, int] | None
    bidirectional: bool
    low_key: int
    high_key: int
    root_key: int
    correction_cents: int
    scale_frequency: int
    scale_factor: int
    balance: int
    modes: int

    @property
    def pcm16(self) -> np.ndarray:
        """The samples as int16 (8-bit data shifted up by 8 bits): exact, for hashing."""
        return np.round(self.data * 32768.0).astype(np.int16)

    @property
    def seconds(self) -> float:
        """Length at the sample's own rate."""
        return len(self.data) / self.rate


@dataclass(frozen=True)
class Patch:
    """One ``.pat`` file: its header description, instrument name and samples (file order)."""

    path: Path
    description: str
    samples: tuple[PatchSample, ...]
    name: str = ""


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _exact_key(millihz: int) -> float:
    """The (fractional) MIDI key of a frequency in milli-Hz."""
    return 69.0 + 12.0 * math.log2(millihz / 440_000)


def _key_range(low_millihz: int, high_millihz: int) -> tuple[int, int]:
    """The keys whose TiMidity pitch lies within ``[low, high]`` milli-Hz."""
    return (bisect.bisect_left(_KEY_MILLIHZ, low_millihz),
            bisect.bisect_right(_KEY_MILLIHZ, high_millihz) - 1)


def _pcm16(raw: np.ndarray, sixteen_bit: bool, unsigned: bool) -> np.ndarray:
    """Little-endian bytes of any of the four sample formats as int16."""
    if sixteen_bit:
        values = raw.view("<u2" if unsigned else "<i2").astype(np.int32)
        return (values - 32768 if unsigned else values).astype(np.int16)
    values = raw.astype(np.int32) - 128 if unsigned else raw.view(np.int8).astype(np.int32)
    return (values * 256).astype(np.int16)


def _read_sample(path: Path, buf: bytes, offset: int, index: int) -> tuple[PatchSample, int]:
    """The sample whose 96-byte header starts at ``offset``, and the offset after its data."""
    if offset + _SAMPLE.size > len(buf):
        raise PatchError(path, f"truncated: sample {index} header needs {_SAMPLE.size} bytes at "
                               f"offset {offset}, the file has {len(buf)}")
    (name, _fractions, size, loop_start, loop_end, rate, low, high, root, _tune, balance,
     _env_rates, _env_offsets, _tremolo, _vibrato, modes, scale_frequency, scale_factor,
     _reserved) = _SAMPLE.unpack_from(buf, offset)
    name = _text(name)
    where = f"sample {index} ({name!r})"
    start = offset + _SAMPLE.size
    if size == 0:
        raise PatchError(path, f"{where} has no data")
    if start + size > len(buf):
        raise PatchError(path, f"truncated: {where} declares {size} bytes of data at offset "
                               f"{start}, the file has {len(buf)}")
    sixteen_bit = bool(modes & MODE_16BIT)
    width = 2 if sixteen_bit else 1
    if size % width:
        raise PatchError(path, f"{where} is 16-bit but has an odd data size ({size} bytes)")
    if rate == 0:
        raise PatchError(path, f"{where} has sample rate 0")
    if root == 0:
        raise PatchError(path, f"{where} has root frequency 0")
    raw = np.frombuffer(buf, np.uint8, size, start)
    pcm = _pcm16(raw, sixteen_bit, bool(modes & MODE_UNSIGNED))
    n = len(pcm)
    loop = None
    if modes & MODE_LOOP:
        loop = (loop_start // width, loop_end // width)
        if not 0 <= loop[0] < loop[1] <= n:
            raise PatchError(path, f"{where} loops over samples {loop[0]}..{loop[1]}, "
                                   f"outside its {n} samples")
    if modes & MODE_BACKWARD:
        pcm = pcm[::-1]
        loop = None if loop is None else (n - loop[1], n - loop[0])
    data = pcm.astype(np.float32) / np.float32(32768.0)
    data.setflags(write=False)
    exact = _exact_key(root)
    root_key = round(exact)
    low_key, high_key = _key_range(low, high)
    sample = PatchSample(
        name=name, data=data, rate=int(rate), loop=loop,
        bidirectional=bool(modes & MODE_BIDIRECTIONAL), low_key=low_key, high_key=high_key,
        root_key=root_key, correction_cents=round((exact - root_key) * 100),
        scale_frequency=int(scale_frequency), scale_factor=int(scale_factor),
        balance=int(balance), modes=int(modes))
    return sample, start + size


def read_patch(path: str | Path) -> Patch:
    """Read the GUS patch ``path``: its first instrument's first layer (what TiMidity plays)."""
    path = Path(path)
    if not path.is_file():
        raise PatchError(path, "file not found")
    buf = path.read_bytes()
    if not any(buf.startswith(magic) for magic in MAGICS):
        raise PatchError(path, f"not a GUS patch (starts with {buf[:22]!r}, expected "
                               f"{MAGICS[0]!r})")
    headers = _HEADER.size + _INSTRUMENT.size + _LAYER.size
    if len(buf) < headers:
        raise PatchError(path, f"truncated: the headers need {headers} bytes, the file has "
                               f"{len(buf)}")
    _magic, description, instruments, *_ = _HEADER.unpack_from(buf, 0)
    if instruments > 1:
        raise PatchError(path, f"has {instruments} instruments; only single-instrument "
                               f"patches are read")
    _id, name, _size, layers, _ = _INSTRUMENT.unpack_from(buf, _HEADER.size)
    if layers > 1:
        raise PatchError(path, f"has {layers} layers; only single-layer patches are read")
    n_samples = _LAYER.unpack_from(buf, _HEADER.size + _INSTRUMENT.size)[3]
    if n_samples == 0:
        raise PatchError(path, "has no samples")
    offset, samples = headers, []
    for index in range(n_samples):
        sample, offset = _read_sample(path, buf, offset, index)
        samples.append(sample)
    return Patch(path=path, description=_text(description), samples=tuple(samples),
                 name=_text(name))


@dataclass(frozen=True)
class PatchMap:
    """What a TiMidity config maps: General MIDI program (bank 0) or drum key (drumset 0) ->
    ``(patch file as written, options such as amp/note/pan)``; ``dirs`` are its ``dir`` lines in
    order, ``notes`` what was skipped and why."""

    tones: dict[int, tuple[str, dict[str, str]]]
    drums: dict[int, tuple[str, dict[str, str]]]
    dirs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _words(line: str) -> list[str]:
    """A config line's words, up to a word starting with ``#`` (a comment)."""
    words = []
    for word in line.split():
        if word.startswith("#"):
            break
        words.append(word)
    return words


def _read_cfg(path: Path, tones: dict, drums: dict, dirs: list, notes: list,
              seen: set[Path]) -> None:
    seen.add(path.resolve())
    section: str | None = None  # "tones", "drums", or "other" (a bank/drumset other than 0)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for lineno, line in enumerate(lines, 1):
        words = _words(line)
        if not words:
            continue
        where = f"{path}:{lineno}"
        head = words[0]
        if head == "dir" and len(words) >= 2:
            dirs.append(" ".join(words[1:]))
        elif head == "source" and len(words) >= 2:
            target = path.parent / " ".join(words[1:])
            if not target.is_file():
                notes.append(f"{where}: source {target} not found; skipped")
            elif target.resolve() in seen:
                notes.append(f"{where}: source {target} already read; skipped")
            else:
                _read_cfg(target, tones, drums, dirs, notes, seen)
        elif head in ("bank", "drumset") and len(words) >= 2 and words[1].isdigit():
            section = "other" if int(words[1]) != 0 else ("tones" if head == "bank" else "drums")
        elif head.isdigit():
            number = int(head)
            if section is None:
                notes.append(f"{where}: {head} comes before any bank or drumset line; skipped")
            elif section == "other":
                continue
            elif not 0 <= number <= 127:
                notes.append(f"{where}: {number} is not a MIDI number (0-127); skipped")
            elif len(words) < 2:
                notes.append(f"{where}: {number} names no patch file; skipped")
            else:
                options = {}
                for word in words[2:]:
                    if "=" in word:
                        key, value = word.split("=", 1)
                        options[key] = value
                    else:
                        notes.append(f"{where}: option {word!r} is not key=value; ignored")
                (tones if section == "tones" else drums)[number] = (words[1], options)
        else:
            notes.append(f"{where}: {' '.join(words)!r} not understood; ignored")


def read_timidity_cfg(path: str | Path) -> PatchMap:
    """Read a TiMidity config: bank 0 and drumset 0 assignments, ``dir`` lines, and the configs
    its ``source`` lines name (relative to the including file; missing ones are noted)."""
    path = Path(path)
    if not path.is_file():
        raise PatchError(path, "config file not found")
    tones: dict[int, tuple[str, dict[str, str]]] = {}
    drums: dict[int, tuple[str, dict[str, str]]] = {}
    dirs: list[str] = []
    notes: list[str] = []
    _read_cfg(path, tones, drums, dirs, notes, set())
    return PatchMap(tones=tones, drums=drums, dirs=tuple(dirs), notes=tuple(notes))


def resolve(patch_map: PatchMap, base_dir: str | Path, program: int | None = None,
            key: int | None = None) -> Path | None:
    """The patch file for ``program`` (bank 0) or drum ``key`` (drumset 0) under ``base_dir``,
    or None when it is unmapped or missing.

    The name is looked for as written and with ``.pat`` added, in ``base_dir`` and then in each
    of the config's ``dir`` folders taken relative to ``base_dir`` (latest first, as TiMidity
    searches), so ``base_dir`` may be the patch folder itself or the root of an unpacked package.
    """
    if (program is None) == (key is None):
        raise ValueError("give exactly one of program= or key=")
    entry = patch_map.tones.get(program) if program is not None else patch_map.drums.get(key)
    if entry is None:
        return None
    name = entry[0].lstrip("/")
    names = [name] if name.lower().endswith(".pat") else [name, name + ".pat"]
    base = Path(base_dir)
    for folder in [base, *(base / d.lstrip("/") for d in reversed(patch_map.dirs))]:
        for candidate in names:
            if (folder / candidate).is_file():
                return folder / candidate
    return None
