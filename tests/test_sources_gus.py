"""GUS patches and TiMidity configs: tiny files written here, read back field by field, and
every malformed-file message."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.sources.gus import (
    MODE_16BIT,
    MODE_BACKWARD,
    MODE_BIDIRECTIONAL,
    MODE_LOOP,
    MODE_UNSIGNED,
    PatchError,
    PatchMap,
    read_patch,
    read_timidity_cfg,
    resolve,
)

MAGIC = b"GF1PATCH110\0ID#000002\0"
C4, A4 = 261626, 440000  # milli-Hz, as GUS patches store frequencies


def sample_bytes(data: bytes, *, modes: int, rate: int = 22050, low: int = 0,
                 high: int = 12_543_854, root: int = A4, loop: tuple[int, int] = (0, 0),
                 name: bytes = b"smp", balance: int = 7, scale_factor: int = 1024) -> bytes:
    """One 96-byte sample header (loop in bytes) followed by its data."""
    header = struct.pack("<7sBIIIHIIIhB6s6s3s3sBhH36s", name, 0, len(data), loop[0], loop[1],
                         rate, low, high, root, 0, balance, b"", b"", b"", b"", modes, 60,
                         scale_factor, b"")
    assert len(header) == 96
    return header + data


def write_patch(path, samples: list[bytes], magic: bytes = MAGIC,
                description: bytes = b"test patch") -> object:
    """A one-instrument, one-layer patch holding ``samples`` (from :func:`sample_bytes`)."""
    body = b"".join(samples)
    header = struct.pack("<22s60sBBBHHI36s", magic, description, 1, 14, 0, len(samples), 127,
                         len(body), b"")
    instrument = struct.pack("<H16sIB40s", 0, b"instr", 47 + len(body), 1, b"")
    layer = struct.pack("<BBIB40s", 0, 0, len(body), len(samples), b"")
    assert (len(header), len(instrument), len(layer)) == (129, 63, 47)
    path.write_bytes(header + instrument + layer + body)
    return path


def test_16bit_signed_looped_sample_is_exact(tmp_path):
    pcm = (np.sin(np.arange(1000) / 7) * 30000).astype(np.int16)
    modes = MODE_16BIT | MODE_LOOP
    patch = read_patch(write_patch(tmp_path / "a.pat", [
        sample_bytes(pcm.astype("<i2").tobytes(), modes=modes, rate=32000, low=C4, high=A4,
                     root=A4, loop=(200, 1000), balance=3)]))
    assert patch.description == "test patch" and patch.name == "instr"
    (s,) = patch.samples
    assert s.name == "smp" and s.rate == 32000 and s.balance == 3 and s.scale_factor == 1024
    np.testing.assert_array_equal(s.pcm16, pcm)
    assert s.data.dtype == np.float32 and s.data.ndim == 1
    np.testing.assert_array_equal(s.data, pcm / np.float32(32768))
    assert s.loop == (100, 500) and not s.bidirectional  # bytes -> 16-bit samples
    assert (s.low_key, s.high_key, s.root_key, s.correction_cents) == (60, 69, 69, 0)
    assert s.seconds == pytest.approx(1000 / 32000)


@pytest.mark.parametrize("modes,raw,expected", [
    (MODE_UNSIGNED, bytes([0, 128, 255]), [-32768, 0, 32512]),
    (0, bytes([0x80, 0, 0x7F]), [-32768, 0, 32512]),
    (MODE_16BIT | MODE_UNSIGNED, np.array([0, 32768, 65535], "<u2").tobytes(), [-32768, 0, 32767]),
])
def test_8bit_and_unsigned_data_become_signed_16bit(tmp_path, modes, raw, expected):
    (s,) = read_patch(write_patch(tmp_path / "b.pat", [sample_bytes(raw, modes=modes)])).samples
    np.testing.assert_array_equal(s.pcm16, np.array(expected, np.int16))
    assert s.data.dtype == np.float32 and s.data.min() == -1.0 and s.data.max() < 1.0


def test_8bit_loop_is_in_samples_already(tmp_path):
    raw = bytes(range(0, 200, 2))
    (s,) = read_patch(write_patch(tmp_path / "c.pat", [
        sample_bytes(raw, modes=MODE_UNSIGNED | MODE_LOOP | MODE_BIDIRECTIONAL, loop=(10, 90)),
    ])).samples
    assert s.loop == (10, 90) and s.bidirectional


def test_two_samples_keep_order_and_touching_ranges_do_not_overlap(tmp_path):
    low = np.arange(-50, 50, dtype=np.int16) * 100
    high = np.arange(50, -50, -1, dtype=np.int16) * 100
    patch = read_patch(write_patch(tmp_path / "d.pat", [
        sample_bytes(low.tobytes(), modes=MODE_16BIT, rate=22050, low=0, high=277155, root=A4,
                     name=b"low"),
        sample_bytes(high.tobytes(), modes=MODE_16BIT | MODE_LOOP, rate=44100, low=277156,
                     high=12_543_854, root=450000, loop=(20, 60), name=b"high"),
    ]))
    first, second = patch.samples
    assert (first.name, second.name) == ("low", "high")
    assert (first.rate, second.rate) == (22050, 44100)
    np.testing.assert_array_equal(first.pcm16, low)
    np.testing.assert_array_equal(second.pcm16, high)
    assert first.loop is None and second.loop == (10, 30)
    # C#4 (key 61) is 277183 mHz: above the first range, inside the second
    assert (first.low_key, first.high_key) == (0, 60)
    assert (second.low_key, second.high_key) == (61, 127)
    assert (second.root_key, second.correction_cents) == (69, 39)  # 450 Hz = A4 + 38.9 cents


def test_backward_data_is_reversed_with_its_loop(tmp_path):
    pcm = np.arange(10, dtype=np.int16)
    (s,) = read_patch(write_patch(tmp_path / "e.pat", [
        sample_bytes(pcm.tobytes(), modes=MODE_16BIT | MODE_LOOP | MODE_BACKWARD, loop=(4, 12)),
    ])).samples
    np.testing.assert_array_equal(s.pcm16, pcm[::-1])
    assert s.loop == (4, 8)  # samples 2..6 of the stored data, mirrored


def _good_patch(tmp_path, name="good.pat"):
    silence = np.zeros(100, "<i2").tobytes()
    return write_patch(tmp_path / name, [sample_bytes(silence, modes=MODE_16BIT)])


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[:100], "truncated: the headers"),
    (lambda b: b[:239 + 50], "truncated: sample 0 header"),
    (lambda b: b[:-1], "truncated: sample 0 ('smp') declares 200 bytes"),
    (lambda b: b"GF1PATCH999\0" + b[12:], "not a GUS patch"),
    (lambda b: b[:198] + b"\0" + b[199:], "has no samples"),
])
def test_malformed_patches_name_the_file_and_the_problem(tmp_path, damage, message):
    path = _good_patch(tmp_path, "broken.pat")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(PatchError, match="broken.pat") as info:
        read_patch(path)
    assert message in str(info.value) and info.value.path == path


def test_bad_sample_fields_are_refused(tmp_path):
    odd = write_patch(tmp_path / "odd.pat", [sample_bytes(b"\0\0\0", modes=MODE_16BIT)])
    with pytest.raises(PatchError, match="odd.pat.*odd data size"):
        read_patch(odd)
    loop = write_patch(tmp_path / "loop.pat",
                       [sample_bytes(b"\0" * 20, modes=MODE_16BIT | MODE_LOOP, loop=(0, 40))])
    with pytest.raises(PatchError, match="loop.pat.*outside its 10 samples"):
        read_patch(loop)
    with pytest.raises(PatchError, match="missing.pat: file not found"):
        read_patch(tmp_path / "missing.pat")


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.integers(-32768, 32767), min_size=1, max_size=500),
       rate=st.integers(1, 65535))
def test_random_16bit_data_round_trips(tmp_path_factory, values, rate):
    pcm = np.array(values, np.int16)
    path = write_patch(tmp_path_factory.mktemp("h") / "r.pat",
                       [sample_bytes(pcm.astype("<i2").tobytes(), modes=MODE_16BIT, rate=rate)])
    (s,) = read_patch(path).samples
    np.testing.assert_array_equal(s.pcm16, pcm)
    assert s.rate == rate and len(s.data) == len(values)
    assert np.all(np.abs(s.data) <= 1.0)


CFG = """\
# a comment
dir /usr/share/midi/freepats

drumset 0
 35\tDrum_000/035_Kick_1.pat amp=100   # trailing comment
 42\tDrum_000/042_Hi-Hat_Closed

bank 0
  0\tTone_000/000_Acoustic_Grand_Piano.pat amp=120 pan=center
 40\tTone_000/040_Violin.pat note=60
bank 1
  0\tTone_001/other.pat
source extra.cfg
source nowhere.cfg
"""


def test_timidity_cfg_maps_bank_0_and_drumset_0(tmp_path):
    (tmp_path / "main.cfg").write_text(CFG)
    (tmp_path / "extra.cfg").write_text("bank 0\n71 Tone_000/071_Clarinet.pat\n")
    m = read_timidity_cfg(tmp_path / "main.cfg")
    assert isinstance(m, PatchMap)
    piano = ("Tone_000/000_Acoustic_Grand_Piano.pat", {"amp": "120", "pan": "center"})
    assert m.tones == {0: piano,
                       40: ("Tone_000/040_Violin.pat", {"note": "60"}),
                       71: ("Tone_000/071_Clarinet.pat", {})}
    assert m.drums == {35: ("Drum_000/035_Kick_1.pat", {"amp": "100"}),
                       42: ("Drum_000/042_Hi-Hat_Closed", {})}
    assert m.dirs == ("/usr/share/midi/freepats",)
    assert len(m.notes) == 1 and "nowhere.cfg not found" in m.notes[0]


def test_resolve_finds_files_under_the_package_root_or_the_patch_folder(tmp_path):
    (tmp_path / "main.cfg").write_text(CFG)
    m = read_timidity_cfg(tmp_path / "main.cfg")
    folder = tmp_path / "pkg" / "usr/share/midi/freepats"
    for name in ("Tone_000/040_Violin.pat", "Drum_000/042_Hi-Hat_Closed.pat"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    for base in (tmp_path / "pkg", folder):
        assert resolve(m, base, program=40) == folder / "Tone_000/040_Violin.pat"
        assert resolve(m, base, key=42) == folder / "Drum_000/042_Hi-Hat_Closed.pat"  # .pat added
        assert resolve(m, base, program=0) is None  # mapped, file absent
        assert resolve(m, base, program=5) is None  # unmapped
    with pytest.raises(ValueError, match="exactly one"):
        resolve(m, folder, program=1, key=35)
    with pytest.raises(PatchError, match="nothing.cfg: config file not found"):
        read_timidity_cfg(tmp_path / "nothing.cfg")
