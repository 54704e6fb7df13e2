"""SoundFont 2 reading and writing: a written SoundFont reads back exactly and plays in
tinysoundfont, recordings keep their hash across files, a real General MIDI SoundFont parses,
and broken files fail with an error naming them."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.sources.sf2 import (
    PresetSpec,
    SampleSpec,
    SoundFontError,
    read_soundfont,
    recording_hashes,
    sample_hash,
    write_soundfont,
)

RATE = 22050
SINE_HZ = 441.0  # 50 points a period at RATE, so a loop of whole periods is seamless


def sine(seconds: float = 1.0, hz: float = SINE_HZ, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return level * np.sin(2 * np.pi * hz * t)


def noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-20000, 20000, size=n).astype(np.int16)


def tiny_presets() -> tuple[PresetSpec, PresetSpec]:
    """A melodic preset with two zones split at key 72, and a one-zone looped drum kit."""
    low = SampleSpec("sine A4", sine(), RATE, root_key=69, loop=(10000, 22050),
                     key_range=(0, 71), release_s=0.2)
    high = SampleSpec("noise C6", noise(3000, 1), 32000, root_key=84, correction=-7,
                      key_range=(72, 127), vel_range=(10, 127), attenuation_cb=30)
    drum = SampleSpec("kick", noise(4000, 2), 44100, root_key=60, loop=(1000, 3500),
                      key_range=(35, 36))
    return (PresetSpec("Test Piano", 0, 4, (low, high)),
            PresetSpec("Test Kit", 128, 0, (drum,)))


@pytest.fixture
def tiny_sf2(tmp_path) -> Path:
    return write_soundfont(tmp_path / "tiny.sf2", tiny_presets(), name="Tiny",
                           copyright="nobody", comment="test")


def render(path: Path, bank: int, program: int, key: int, seconds: float = 0.6,
           sr: int = 44100) -> np.ndarray:
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sr)
    sfid = synth.sfload(str(path))
    synth.program_select(0, sfid, bank, program, is_drums=bank == 128)
    synth.noteon(0, key, 100)
    n = int(seconds * sr)
    return np.frombuffer(synth.generate(n), dtype=np.float32).reshape(n, 2).mean(axis=1)


# ---- round trip ----------------------------------------------------------------------------

def test_a_written_soundfont_reads_back_exactly(tiny_sf2):
    info = read_soundfont(tiny_sf2)
    assert (info.name, info.copyright, info.comment) == ("Tiny", "nobody", "test")
    assert [(p.name, p.bank, p.program) for p in info.presets] == [("Test Piano", 0, 4),
                                                                   ("Test Kit", 128, 0)]
    piano, kit = info.preset(0, 4), info.preset(128, 0)
    assert info.preset(0, 5) is None
    assert [(z.key_range, z.vel_range, z.root_key, z.loop_mode) for z in piano.zones] == [
        ((0, 71), (0, 127), 69, 1), ((72, 127), (10, 127), 84, 0)]
    assert [(z.key_range, z.root_key, z.loop_mode) for z in kit.zones] == [((35, 36), 60, 1)]
    specs = [z for p in tiny_presets() for z in p.zones]
    zones = piano.zones + kit.zones
    for spec, zone in zip(specs, zones, strict=True):
        s = info.samples[zone.sample]
        assert (s.name, s.rate, s.root_key, s.correction) == (spec.name, spec.rate,
                                                              spec.root_key, spec.correction)
        if spec.loop:
            assert (s.loop_start - s.start, s.loop_end - s.start) == spec.loop
        data = info.sample_data(zone.sample)
        expected = spec.data if spec.data.dtype == np.int16 else \
            np.round(spec.data * 32767).astype(np.int16)
        assert data.dtype == np.int16 and np.array_equal(data, expected)
    assert zones[0].generators[38] < 0 and zones[1].generators[48] == 30  # release, attenuation
    assert piano.samples == tuple(sorted({zones[0].sample, zones[1].sample}))


def test_tinysoundfont_plays_every_written_preset(tiny_sf2):
    """Each preset sounds, and the sine zone sounds at the sine's pitch at its root key."""
    y = render(tiny_sf2, 0, 4, 69)
    assert np.max(np.abs(y)) > 0.01
    part = y[int(0.05 * 44100):]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    peak = np.fft.rfftfreq(len(part), 1 / 44100)[np.argmax(spectrum)]
    assert abs(peak - SINE_HZ) < 0.01 * SINE_HZ
    assert np.max(np.abs(render(tiny_sf2, 0, 4, 80))) > 0.01  # the upper zone
    kit = render(tiny_sf2, 128, 0, 36)
    assert np.max(np.abs(kit)) > 0.01
    assert np.max(np.abs(kit[int(0.5 * 44100):])) > 0.01  # its 0.1 s sample rings on: the loop


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 3000), min_size=1, max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_random_int16_recordings_round_trip(lengths, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(-32768, 32768, size=n).astype(np.int16) for n in lengths]
    zones = tuple(SampleSpec(f"s{i}", a, 8000 + i, root_key=60 + i) for i, a in enumerate(arrays))
    with tempfile.TemporaryDirectory() as folder:
        info = read_soundfont(write_soundfont(Path(folder) / "r.sf2",
                                              [PresetSpec("Random", 0, 0, zones)]))
        got = [info.sample_data(z.sample) for z in info.presets[0].zones]
    assert len(got) == len(arrays)
    assert all(np.array_equal(g, a) for g, a in zip(got, arrays, strict=True))


def test_the_writer_refuses_bad_specs(tmp_path):
    with pytest.raises(ValueError, match="loop"):
        SampleSpec("x", np.zeros(100), RATE, 60, loop=(50, 200))
    with pytest.raises(ValueError, match="root_key"):
        SampleSpec("x", np.zeros(100), RATE, 128)
    with pytest.raises(ValueError, match="rate"):
        SampleSpec("x", np.zeros(100), 22050.5, 60)
    with pytest.raises(ValueError, match="within"):
        write_soundfont(tmp_path / "never.sf2",
                        [PresetSpec("p", 0, 0, (SampleSpec("x", np.full(10, 2.0), RATE, 60),))])
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left


# ---- recording identity --------------------------------------------------------------------

def test_a_shared_recording_has_one_hash_in_two_files(tmp_path):
    shared = noise(2000, 7)
    a = write_soundfont(tmp_path / "a.sf2", [
        PresetSpec("A1", 0, 0, (SampleSpec("shared", shared, RATE, 60),)),
        PresetSpec("A2", 0, 1, (SampleSpec("shared", shared, RATE, 60),
                                SampleSpec("only a", noise(1500, 8), RATE, 62)))])
    b = write_soundfont(tmp_path / "b.sf2", [
        PresetSpec("B1", 0, 0, (SampleSpec("only b", noise(1000, 9), 44100, 64),
                                SampleSpec("copy", shared, 44100, 67)))])
    info_a, info_b = read_soundfont(a), read_soundfont(b)
    assert len(info_a.samples) == 2  # the array used twice is stored once, referenced twice
    assert info_a.presets[0].samples[0] == info_a.presets[1].zones[0].sample
    hashes_a, hashes_b = recording_hashes(info_a), recording_hashes(info_b)
    assert sorted(set(hashes_a.values()) & set(hashes_b.values())) == [sample_hash(shared)]
    assert len(set(hashes_a.values()) | set(hashes_b.values())) == 3
    assert sample_hash(shared.astype(">i2")) == sample_hash(shared) == \
        sample_hash(shared.astype(np.int64))
    with pytest.raises(TypeError):
        sample_hash(np.zeros(4))


# ---- a real General MIDI SoundFont ---------------------------------------------------------

def test_timgm6mb_parses_into_a_general_midi_set():
    import pretty_midi

    info = read_soundfont(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2")
    melodic = {p.program for p in info.presets if p.bank == 0}
    assert melodic == set(range(128))
    kits = [p for p in info.presets if p.bank == 128]
    assert kits and info.preset(128, 0) is not None
    assert all(p.zones for p in info.presets)
    assert all(0 <= z.sample < len(info.samples) and z.key_range[0] <= z.key_range[1]
               for p in info.presets for z in p.zones)
    standard_keys = {k for z in info.preset(128, 0).zones
                     for k in range(z.key_range[0], z.key_range[1] + 1)}
    assert {35, 36, 38, 42, 46} <= standard_keys
    s = info.samples[info.preset(0, 0).zones[0].sample]
    data = info.sample_data(s.index)
    assert len(data) == s.length and np.array_equal(data, info.pool()[s.start:s.end])
    assert len(recording_hashes(info)) == len(info.samples)


# ---- broken files --------------------------------------------------------------------------

def _patched_shdr_end(data: bytes, end: int) -> bytes:
    """The file with its first sample header's end point set to ``end``."""
    at = data.index(b"shdr") + 8 + 20 + 4  # chunk header, name, start
    return data[:at] + struct.pack("<I", end) + data[at + 4:]


@pytest.mark.parametrize("fault, match", [
    ("text", "not a SoundFont"), ("wave", "not a SoundFont"), ("truncated", "truncated"),
    ("no pdta", "missing chunk"), ("bad sample", "outside"),
])
def test_a_broken_file_raises_an_error_naming_it(tiny_sf2, tmp_path, fault, match):
    data = tiny_sf2.read_bytes()
    pdta = data.rindex(b"pdta") - 8  # the LIST 'pdta' chunk comes last
    broken = {
        "text": b"this is not a SoundFont\n",
        "wave": b"RIFF" + struct.pack("<I", 4) + b"WAVE",
        "truncated": data[: len(data) // 2],
        "no pdta": b"RIFF" + struct.pack("<I", pdta - 8) + data[8:pdta],
        "bad sample": _patched_shdr_end(data, 10**7),
    }[fault]
    path = tmp_path / f"{fault.replace(' ', '_')}.sf2"
    path.write_bytes(broken)
    with pytest.raises(SoundFontError, match=match) as err:
        read_soundfont(path)
    assert str(path) in str(err.value)
