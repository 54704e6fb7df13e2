"""SoundFont 2 files in pure Python: read their structure and recordings, write small ones.

The demo set is rendered with ``tinysoundfont`` from several sample libraries. To know which
recordings two libraries share we must see inside a SoundFont: which samples (recordings) it
holds and which of them each preset plays. :func:`read_soundfont` reads the preset, instrument
and sample headers (the ``pdta`` list) and only notes where the sample pool (``smpl``) starts,
so :meth:`SoundFontInfo.sample_data` reads one recording at a time; :func:`sample_hash` gives a
recording an identity that does not depend on the file it sits in. :func:`write_soundfont`
goes the other way: it writes a valid SoundFont from sample arrays, so that libraries shipped
as GUS patches or folders of audio files play through the same renderer, and so that tests can
make tiny SoundFonts. Layout and generator numbers follow the SoundFont 2.04 specification;
the 24-bit extension (``sm24``) is ignored (recordings are read and hashed as 16-bit).
Used in: helpers/sources/__init__.py (documented there); tests/test_sources_sf2.py.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.files import atomic_file

# Generator operators (SoundFont 2.04, section 8.1.2) used here.
GEN_RELEASE_VOL_ENV = 38
GEN_INSTRUMENT = 41
GEN_KEY_RANGE = 43
GEN_VEL_RANGE = 44
GEN_INITIAL_ATTENUATION = 48
GEN_SAMPLE_ID = 53
GEN_SAMPLE_MODES = 54
GEN_OVERRIDING_ROOT_KEY = 58
# Operators whose amount is an unsigned word (index) or a (lo, hi) byte pair; the rest are signed.
_UNSIGNED_GENS = frozenset({GEN_INSTRUMENT, GEN_SAMPLE_ID})
_RANGE_GENS = frozenset({GEN_KEY_RANGE, GEN_VEL_RANGE})

ROM_SAMPLE = 0x8000  # sfSampleType bit: the data lives in a sound card's ROM, not in the file
MONO_SAMPLE = 1
PAD_POINTS = 46  # zero points the specification requires after every sample in smpl

# Record layouts of the pdta sub-chunks (little-endian, packed).
_RECORDS: dict[str, struct.Struct] = {
    "phdr": struct.Struct("<20sHHHIII"),
    "pbag": struct.Struct("<HH"),
    "pmod": struct.Struct("<HHhHH"),
    "pgen": struct.Struct("<HH"),
    "inst": struct.Struct("<20sH"),
    "ibag": struct.Struct("<HH"),
    "imod": struct.Struct("<HHhHH"),
    "igen": struct.Struct("<HH"),
    "shdr": struct.Struct("<20sIIIIIBbHH"),
}
_CHUNK = struct.Struct("<4sI")


class SoundFontError(ValueError):
    """A file that is not a readable SoundFont 2 (the message names the file and the fault)."""


# --------------------------------------------------------------------------------------------
# What a SoundFont holds
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One sample header (``shdr``): a recording in the pool, offsets absolute in points."""

    index: int
    name: str
    start: int
    end: int
    loop_start: int
    loop_end: int
    rate: int
    root_key: int  # originalPitch (MIDI key)
    correction: int  # pitch correction, cents
    link: int
    kind: int  # sfSampleType: 1 mono, 2 right, 4 left, 8 linked; bit 0x8000 ROM

    @property
    def length(self) -> int:
        """Number of points (``end - start``)."""
        return self.end - self.start

    @property
    def is_rom(self) -> bool:
        return bool(self.kind & ROM_SAMPLE)


@dataclass(frozen=True)
class Zone:
    """One instrument zone as a preset reaches it: a sample over key and velocity ranges.

    ``generators`` maps operator -> amount for the instrument zone with the instrument's global
    zone applied; amounts are signed, except instrument and sample indices (unsigned) and key
    and velocity ranges (the raw word, ``lo + 256 * hi``). ``key_range`` and ``vel_range``
    are already intersected with the preset zone's ranges.
    """

    sample: int
    key_range: tuple[int, int]
    vel_range: tuple[int, int]
    root_key: int  # overridingRootKey if set, else the sample's originalPitch
    loop_mode: int  # sampleModes: 0 no loop, 1 loop, 3 loop until release
    generators: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """A preset (bank, program) and every instrument zone it plays."""

    name: str
    bank: int
    program: int
    zones: tuple[Zone, ...]

    @property
    def samples(self) -> tuple[int, ...]:
        """The sample indices the preset plays, sorted, each once."""
        return tuple(sorted({z.sample for z in self.zones}))


@dataclass(frozen=True)
class SoundFontInfo:
    """A SoundFont's names, sample headers and presets; sample data stays in the file.

    ``pool_offset`` is the byte offset of the ``smpl`` data in the file, ``pool_points`` its
    length in 16-bit points.
    """

    path: Path
    name: str
    copyright: str
    comment: str
    samples: tuple[Sample, ...]
    presets: tuple[Preset, ...]
    pool_offset: int = field(default=0, repr=False)
    pool_points: int = field(default=0, repr=False)

    def preset(self, bank: int, program: int) -> Preset | None:
        """The first preset at (bank, program), or None."""
        return next((p for p in self.presets if (p.bank, p.program) == (bank, program)), None)

    def sample_data(self, index: int) -> np.ndarray:
        """The recording of sample ``index``: its ``[start, end)`` points of ``smpl``, int16.

        Read from the file on each call. Raises SoundFontError for a ROM sample.
        """
        s = self.samples[index]
        if s.is_rom:
            raise SoundFontError(f"{self.path}: sample {index} ({s.name!r}) is a ROM sample; "
                                 "its data is not in the file")
        with open(self.path, "rb") as f:
            f.seek(self.pool_offset + 2 * s.start)
            raw = f.read(2 * s.length)
        if len(raw) != 2 * s.length:
            raise SoundFontError(f"{self.path}: truncated sample data for sample {index}")
        return np.frombuffer(raw, dtype="<i2").astype(np.int16)

    def pool(self) -> np.ndarray:
        """The whole sample pool as a read-only memory map (int16 little-endian points)."""
        if self.pool_points == 0:
            return np.zeros(0, dtype="<i2")
        return np.memmap(self.path, dtype="<i2", mode="r", offset=self.pool_offset,
                         shape=(self.pool_points,))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def _text(raw: bytes) -> str:
    """A fixed-size or zero-terminated name: up to the first NUL, trailing spaces removed."""
    return raw.split(b"\0", 1)[0].decode("latin-1").rstrip()


def _chunks(path: Path, data: bytes, base: int, what: str) -> list[tuple[str, int, int]]:
    """(tag, offset, size) of the sub-chunks in ``data`` (which starts at file offset ``base``)."""
    out, pos = [], 0
    while pos + _CHUNK.size <= len(data):
        tag, size = _CHUNK.unpack_from(data, pos)
        start = pos + _CHUNK.size
        if start + size > len(data):
            raise SoundFontError(f"{path}: truncated: chunk {tag!r} in {what} claims {size} bytes, "
                                 f"{len(data) - start} remain")
        out.append((tag.decode("latin-1"), base + start, size))
        pos = start + size + (size & 1)
    return out


def _records(path: Path, pdta: dict[str, bytes], tag: str) -> list[tuple]:
    """All records of a pdta sub-chunk, terminal record included."""
    if tag not in pdta:
        raise SoundFontError(f"{path}: missing chunk {tag!r} in LIST 'pdta'")
    rec, raw = _RECORDS[tag], pdta[tag]
    if len(raw) % rec.size or len(raw) < rec.size:
        raise SoundFontError(f"{path}: chunk {tag!r} is {len(raw)} bytes, not a positive "
                             f"multiple of its {rec.size}-byte records")
    return list(rec.iter_unpack(raw))


def _zone_generators(path: Path, bags: list[tuple], gens: list[tuple], first: int, stop: int,
                     terminal: int, what: str) -> list[dict[int, int]]:
    """Generator dicts of bags ``[first, stop)``, amounts decoded as :class:`Zone` describes.

    A generator repeated in a zone keeps its last amount; generators after the zone's terminal
    one (instrument or sampleID) are ignored, as the specification says.
    """
    if not 0 <= first <= stop < len(bags):
        raise SoundFontError(f"{path}: {what} zone indices {first}..{stop} out of range "
                             f"({len(bags) - 1} zones)")
    zones = []
    for b in range(first, stop):
        g0, g1 = bags[b][0], bags[b + 1][0]
        if not 0 <= g0 <= g1 <= len(gens):
            raise SoundFontError(f"{path}: {what} generator indices {g0}..{g1} out of range "
                                 f"({len(gens) - 1} generators)")
        zone: dict[int, int] = {}
        for oper, amount in gens[g0:g1]:
            signed = oper not in _UNSIGNED_GENS and oper not in _RANGE_GENS and amount >= 0x8000
            zone[oper] = amount - 0x10000 if signed else amount
            if oper == terminal:
                break
        zones.append(zone)
    return zones


def _find_smpl(path: Path, sdta_at: int, sdta_len: int) -> tuple[int | None, int]:
    """(byte offset, points) of the ``smpl`` chunk in LIST 'sdta', reading only chunk headers;
    offset None when there is none."""
    with open(path, "rb") as f:
        pos = 0
        while pos + 8 <= sdta_len:
            f.seek(sdta_at + pos)
            tag, n = _CHUNK.unpack(f.read(8))
            if pos + 8 + n > sdta_len:
                raise SoundFontError(f"{path}: truncated: chunk {tag!r} in LIST 'sdta' claims "
                                     f"{n} bytes")
            if tag == b"smpl":
                return sdta_at + pos + 8, n // 2
            pos += 8 + n + (n & 1)
    return None, 0


def _split_global(zones: list[dict[int, int]], terminal: int) -> tuple[dict[int, int],
                                                                     list[dict[int, int]]]:
    """(global zone, local zones): a first zone without the terminal generator is global;
    a later zone without it is ignored, as the specification says."""
    glob = zones[0] if zones and terminal not in zones[0] else {}
    return glob, [z for z in zones if terminal in z]


def _range(gens: dict[int, int], oper: int) -> tuple[int, int]:
    word = gens.get(oper)
    return (0, 127) if word is None else (word & 0xFF, word >> 8)


def read_soundfont(path) -> SoundFontInfo:
    """Read a SoundFont's INFO names, sample headers and presets (not its sample pool).

    Raises SoundFontError naming the file when it is not RIFF 'sfbk', lacks a chunk, is
    truncated or points outside its own tables. A missing LIST 'INFO' only leaves the names
    empty.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise SoundFontError(f"{path}: not a SoundFont 2 file (no RIFF 'sfbk' header)")
        riff_end = 8 + struct.unpack_from("<I", head, 4)[0]
        if riff_end > size:
            raise SoundFontError(f"{path}: truncated: RIFF claims {riff_end} bytes, "
                                 f"file has {size}")
        lists: dict[str, tuple[int, bytes | None, int]] = {}
        pos = 12
        while pos + 12 <= riff_end:
            f.seek(pos)
            tag, length = _CHUNK.unpack(f.read(8))
            kind = f.read(4)
            if pos + 8 + length > riff_end:
                raise SoundFontError(f"{path}: truncated: chunk {tag!r} at byte {pos} claims "
                                     f"{length} bytes beyond the end of the RIFF")
            if tag == b"LIST":
                if length < 4:
                    raise SoundFontError(f"{path}: LIST chunk at byte {pos} is {length} bytes, "
                                         "too short for its type")
                name = kind.decode("latin-1")
                body = None if name == "sdta" else f.read(length - 4)  # sdta stays in the file
                lists.setdefault(name, (pos + 12, body, length - 4))
            pos += 8 + length + (length & 1)
    for name in ("sdta", "pdta"):
        if name not in lists:
            raise SoundFontError(f"{path}: missing chunk LIST {name!r}")

    info_at, info_body, _ = lists.get("INFO", (0, b"", 0))  # lenient: only names come from it
    info = {tag: _text(info_body[off - info_at: off - info_at + n])
            for tag, off, n in _chunks(path, info_body, info_at, "LIST 'INFO'")}
    sdta_at, _, sdta_len = lists["sdta"]
    pool_offset, pool_points = _find_smpl(path, sdta_at, sdta_len)

    pdta_at, pdta_body, _ = lists["pdta"]
    pdta = {tag: pdta_body[off - pdta_at: off - pdta_at + n]
            for tag, off, n in _chunks(path, pdta_body, pdta_at, "LIST 'pdta'")}
    rec = {tag: _records(path, pdta, tag) for tag in _RECORDS}

    samples = tuple(
        Sample(i, _text(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9])
        for i, r in enumerate(rec["shdr"][:-1]))
    for s in samples:
        if s.is_rom:
            continue
        if pool_offset is None:
            raise SoundFontError(f"{path}: missing chunk 'smpl' in LIST 'sdta' "
                                 f"(sample {s.index} {s.name!r} needs it)")
        if not 0 <= s.start <= s.end <= pool_points:
            raise SoundFontError(f"{path}: sample {s.index} ({s.name!r}) spans points "
                                 f"{s.start}..{s.end}, outside the {pool_points}-point pool")

    instruments = []  # per instrument: its local zones' generators, global zone applied
    inst, ibag, igen = rec["inst"], rec["ibag"], rec["igen"]
    for i in range(len(inst) - 1):
        zones = _zone_generators(path, ibag, igen, inst[i][1], inst[i + 1][1], GEN_SAMPLE_ID,
                                 f"instrument {i} ({_text(inst[i][0])!r})")
        glob, local = _split_global(zones, GEN_SAMPLE_ID)
        merged = []
        for z in local:
            if z[GEN_SAMPLE_ID] >= len(samples):
                raise SoundFontError(f"{path}: instrument {i} ({_text(inst[i][0])!r}) uses "
                                     f"sample {z[GEN_SAMPLE_ID]}; there are {len(samples)}")
            merged.append({**glob, **z})
        instruments.append(merged)

    presets = []
    phdr, pbag, pgen = rec["phdr"], rec["pbag"], rec["pgen"]
    for p in range(len(phdr) - 1):
        name, program, bank = _text(phdr[p][0]), phdr[p][1], phdr[p][2]
        zones = _zone_generators(path, pbag, pgen, phdr[p][3], phdr[p + 1][3], GEN_INSTRUMENT,
                                 f"preset {bank}:{program} ({name!r})")
        glob, local = _split_global(zones, GEN_INSTRUMENT)
        out = []
        for pz in local:
            pz = {**glob, **pz}
            if pz[GEN_INSTRUMENT] >= len(instruments):
                raise SoundFontError(f"{path}: preset {bank}:{program} ({name!r}) uses "
                                     f"instrument {pz[GEN_INSTRUMENT]}; there are "
                                     f"{len(instruments)}")
            pk, pv = _range(pz, GEN_KEY_RANGE), _range(pz, GEN_VEL_RANGE)
            for gens in instruments[pz[GEN_INSTRUMENT]]:
                ik, iv = _range(gens, GEN_KEY_RANGE), _range(gens, GEN_VEL_RANGE)
                keys = (max(pk[0], ik[0]), min(pk[1], ik[1]))
                vels = (max(pv[0], iv[0]), min(pv[1], iv[1]))
                if keys[0] > keys[1] or vels[0] > vels[1]:
                    continue
                sample = samples[gens[GEN_SAMPLE_ID]]
                override = gens.get(GEN_OVERRIDING_ROOT_KEY, -1)
                out.append(Zone(sample.index, keys, vels,
                                override if 0 <= override <= 127 else sample.root_key,
                                gens.get(GEN_SAMPLE_MODES, 0) & 3, dict(gens)))
        presets.append(Preset(name, bank, program, tuple(out)))

    return SoundFontInfo(path, info.get("INAM", ""), info.get("ICOP", ""), info.get("ICMT", ""),
                         samples, tuple(presets), pool_offset or 0, pool_points)


# --------------------------------------------------------------------------------------------
# Recording identity
# --------------------------------------------------------------------------------------------

def sample_hash(data: np.ndarray) -> str:
    """A 16-hex-digit BLAKE2b digest of a recording's PCM as little-endian int16.

    The same points give the same digest whatever file, offset or byte order they came from.
    ``data`` must hold integers within int16 (a float recording has no unique PCM).
    """
    a = np.asarray(data)
    if a.dtype.kind not in "iu":
        raise TypeError(f"sample_hash needs integer PCM, got dtype {a.dtype}")
    if a.size and (a.min() < -32768 or a.max() > 32767):
        raise ValueError("sample_hash: values outside int16")
    return hashlib.blake2b(np.ascontiguousarray(a, dtype="<i2").tobytes(),
                           digest_size=8).hexdigest()


def recording_hashes(info: SoundFontInfo) -> dict[int, str]:
    """Sample index -> :func:`sample_hash`, for every non-ROM sample with at least one point."""
    pool = info.pool()
    return {s.index: sample_hash(pool[s.start: s.end]) for s in info.samples
            if not s.is_rom and s.length > 0}


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)  # eq=False: the array field has no truth-valued ==
class SampleSpec:
    """One recording to write and the zone that plays it.

    ``data`` is mono, float in [-1, 1] or integer within int16; ``loop`` is (start, end) in
    points relative to the recording (played with sampleModes 1); ``release_s`` sets the
    volume envelope's release; ``attenuation_cb`` is the initial attenuation in centibels.
    """

    name: str
    data: np.ndarray
    rate: int
    root_key: int
    correction: int = 0
    loop: tuple[int, int] | None = None
    key_range: tuple[int, int] = (0, 127)
    vel_range: tuple[int, int] = (0, 127)
    release_s: float | None = None
    attenuation_cb: int = 0

    def __post_init__(self):
        n = len(self.data)
        checks = [
            (np.ndim(self.data) == 1 and n > 0, "data must be a non-empty 1-D array"),
            (isinstance(self.rate, (int, np.integer)) and 0 < self.rate < 2**32,
             f"rate {self.rate} is not a positive whole number of hertz"),
            (0 <= self.root_key <= 127, f"root_key {self.root_key} not a MIDI key"),
            (-128 <= self.correction <= 127, f"correction {self.correction} outside -128..127"),
            (self.loop is None or 0 <= self.loop[0] < self.loop[1] <= n,
             f"loop {self.loop} outside the {n} points"),
            (0 <= self.key_range[0] <= self.key_range[1] <= 127, f"key_range {self.key_range}"),
            (0 <= self.vel_range[0] <= self.vel_range[1] <= 127, f"vel_range {self.vel_range}"),
            (self.release_s is None or self.release_s > 0, f"release_s {self.release_s}"),
            (0 <= self.attenuation_cb <= 1440, f"attenuation_cb {self.attenuation_cb}"),
        ]
        for ok, why in checks:
            if not ok:
                raise ValueError(f"SampleSpec {self.name!r}: {why}")


@dataclass(frozen=True)
class PresetSpec:
    """A preset to write: one instrument with one zone per :class:`SampleSpec`."""

    name: str
    bank: int
    program: int
    zones: tuple[SampleSpec, ...]


def pcm16(data: np.ndarray) -> np.ndarray:
    """``data`` as little-endian int16: floats in [-1, 1] scaled by 32767, integers checked."""
    a = np.asarray(data)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.max(np.abs(a), initial=0.0) > 1.0:
            raise ValueError("float sample data must be finite and within [-1, 1]")
        return np.round(a * 32767).astype("<i2")
    if a.dtype.kind in "iu":
        if a.size and (a.min() < -32768 or a.max() > 32767):
            raise ValueError("integer sample data must be within int16")
        return a.astype("<i2")
    raise TypeError(f"sample data must be float or integer, got dtype {a.dtype}")


def _name20(name: str) -> bytes:
    """A 20-byte name field: ASCII (others become '?'), at most 19 characters, NUL-padded."""
    return name.encode("ascii", "replace")[:19].ljust(20, b"\0")


def _chunk(tag: bytes, payload: bytes) -> bytes:
    return _CHUNK.pack(tag, len(payload)) + payload + b"\0" * (len(payload) & 1)


def _zstr(text: str) -> bytes:
    """An INFO string: zero-terminated, padded to an even length."""
    raw = text.encode("ascii", "replace") + b"\0"
    return raw + b"\0" * (len(raw) & 1)


def _instrument_gens(spec: SampleSpec, sample_id: int) -> list[tuple[int, int]]:
    """An instrument zone's generators in the required order (ranges first, sampleID last)."""
    gens = [(GEN_KEY_RANGE, spec.key_range[0] | spec.key_range[1] << 8),
            (GEN_VEL_RANGE, spec.vel_range[0] | spec.vel_range[1] << 8)]
    if spec.attenuation_cb:
        gens.append((GEN_INITIAL_ATTENUATION, spec.attenuation_cb))
    if spec.release_s is not None:
        timecents = int(np.clip(round(1200 * math.log2(spec.release_s)), -12000, 8000))
        gens.append((GEN_RELEASE_VOL_ENV, timecents & 0xFFFF))
    if spec.loop is not None:
        gens.append((GEN_SAMPLE_MODES, 1))
    gens.append((GEN_SAMPLE_ID, sample_id))
    return gens


def write_soundfont(path, presets: Sequence[PresetSpec], name: str = "helpers SoundFont",
                    copyright: str = "", comment: str = "") -> Path:
    """Write a SoundFont 2 file playing ``presets``; returns ``path`` (written atomically).

    Each preset gets one instrument, each :class:`SampleSpec` one instrument zone. A recording
    whose points occur again (the same array in two zones or presets) is stored once in the
    pool; identical sample headers are shared too. Names longer than 19 characters are cut.
    """
    blocks: list[bytes] = []  # the pool's contents, in order
    pool_at: dict[bytes, int] = {}  # PCM bytes -> start point in the pool
    shdr: list[bytes] = []
    shdr_at: dict[tuple, int] = {}
    points = 0
    phdr, pbag, pgen, inst, ibag, igen = [], [], [], [], [], []
    for p, preset in enumerate(presets):
        phdr.append(_RECORDS["phdr"].pack(_name20(preset.name), preset.program, preset.bank,
                                          len(pbag), 0, 0, 0))
        pbag.append(_RECORDS["pbag"].pack(len(pgen), 0))
        pgen.append(_RECORDS["pgen"].pack(GEN_INSTRUMENT, p))
        inst.append(_RECORDS["inst"].pack(_name20(preset.name), len(ibag)))
        for spec in preset.zones:
            pcm = pcm16(spec.data).tobytes()
            if pcm not in pool_at:
                pool_at[pcm] = points
                blocks += [pcm, bytes(2 * PAD_POINTS)]
                points += len(pcm) // 2 + PAD_POINTS
            start = pool_at[pcm]
            end = start + len(pcm) // 2
            loop = (start + spec.loop[0], start + spec.loop[1]) if spec.loop else (start, end)
            header = (spec.name, start, end, *loop, spec.rate, spec.root_key, spec.correction)
            if header not in shdr_at:
                shdr_at[header] = len(shdr)
                shdr.append(_RECORDS["shdr"].pack(_name20(spec.name), *header[1:], 0,
                                                  MONO_SAMPLE))
            ibag.append(_RECORDS["ibag"].pack(len(igen), 0))
            igen += [_RECORDS["igen"].pack(*g)
                     for g in _instrument_gens(spec, shdr_at[header])]
    phdr.append(_RECORDS["phdr"].pack(_name20("EOP"), 0, 0, len(pbag), 0, 0, 0))
    pbag.append(_RECORDS["pbag"].pack(len(pgen), 0))
    pgen.append(_RECORDS["pgen"].pack(0, 0))
    inst.append(_RECORDS["inst"].pack(_name20("EOI"), len(ibag)))
    ibag.append(_RECORDS["ibag"].pack(len(igen), 0))
    igen.append(_RECORDS["igen"].pack(0, 0))
    shdr.append(_RECORDS["shdr"].pack(_name20("EOS"), *[0] * 9))
    no_mods = bytes(_RECORDS["pmod"].size)

    info = [_chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", _zstr("EMU8000")),
            _chunk(b"INAM", _zstr(name))]
    info += [_chunk(tag, _zstr(text)) for tag, text in
             ((b"ICOP", copyright), (b"ICMT", comment)) if text]
    info.append(_chunk(b"ISFT", _zstr("helpers.sources.sf2")))
    info_list = _chunk(b"LIST", b"INFO" + b"".join(info))
    pdta_list = _chunk(b"LIST", b"pdta" + b"".join(
        _chunk(tag, b"".join(body)) for tag, body in (
            (b"phdr", phdr), (b"pbag", pbag), (b"pmod", [no_mods]), (b"pgen", pgen),
            (b"inst", inst), (b"ibag", ibag), (b"imod", [no_mods]), (b"igen", igen),
            (b"shdr", shdr))))
    smpl_bytes = 2 * points
    sdta_size = 4 + 8 + smpl_bytes
    riff_size = 4 + len(info_list) + 8 + sdta_size + len(pdta_list)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(_CHUNK.pack(b"RIFF", riff_size) + b"sfbk" + info_list)
            f.write(_CHUNK.pack(b"LIST", sdta_size) + b"sdta" + _CHUNK.pack(b"smpl", smpl_bytes))
            for block in blocks:
                f.write(block)
            f.write(pdta_list)

    return atomic_file(path, write)
