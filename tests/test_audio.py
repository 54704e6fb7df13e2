"""Reading audio: formats, channel counts, bit depths, rates, and every bad-input message."""

import numpy as np
import pytest
import soundfile as sf

from helpers.audio import AudioError, find_audio_files, fix_length, load_audio, peak_dbfs


@pytest.mark.parametrize("name,subtype", [
    ("a.wav", "PCM_16"), ("a.wav", "PCM_24"), ("a.wav", "PCM_U8"), ("a.wav", "FLOAT"),
    ("a.flac", "PCM_16"), ("a.ogg", "VORBIS"),
])
def test_formats_and_bit_depths_load_as_mono_float32(write_tone, name, subtype):
    y = load_audio(write_tone(name, seconds=1.0, sr=22050, subtype=subtype), sample_rate=22050)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 22050) <= 1
    assert 0.3 < np.max(np.abs(y)) <= 1.0


@pytest.mark.parametrize("sr", [8000, 11025, 44100, 48000, 96000])
def test_unusual_rates_are_resampled_to_the_project_rate(write_tone, sr):
    y = load_audio(write_tone("r.wav", seconds=0.5, sr=sr), sample_rate=22050)
    assert abs(len(y) - 11025) <= 2
    # the 440 Hz fundamental survives resampling
    spectrum = np.abs(np.fft.rfft(y))
    peak_hz = np.argmax(spectrum) * 22050 / len(y)
    assert abs(peak_hz - 440) < 10


def test_stereo_is_mixed_down(tmp_path):
    left = np.full(1000, 0.5, np.float32)
    right = np.full(1000, -0.1, np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 22050, subtype="FLOAT")
    y = load_audio(tmp_path / "s.wav")
    assert np.allclose(y, 0.2, atol=1e-6)


def test_max_seconds_cuts(write_tone):
    y = load_audio(write_tone("long.wav", seconds=3.0), max_seconds=1.0)
    assert len(y) == 22050


def test_only_the_first_max_seconds_are_read_and_a_silent_start_says_so(tmp_path, write_tone):
    y = load_audio(write_tone("fast.wav", seconds=3.0, sr=44100), max_seconds=1.0)
    assert len(y) == 22050  # one second at the file's own rate, then resampled
    late = np.concatenate([np.zeros(2 * 22050, np.float32), 0.5 * np.ones(22050, np.float32)])
    sf.write(tmp_path / "late.wav", late, 22050)
    with pytest.raises(AudioError, match=r"late\.wav: silent in its first 1 s \(peak below -60 dBFS\)"):
        load_audio(tmp_path / "late.wav", max_seconds=1.0)
    assert len(load_audio(tmp_path / "late.wav", max_seconds=3.0)) == 3 * 22050


@pytest.mark.parametrize("make,problem", [
    (lambda p: p.write_bytes(b"RIFF\x00\x00garbage that is not audio"), "cannot decode"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), 22050), "empty"),
    (lambda p: sf.write(p, np.zeros(22050, np.float32), 22050), "silent"),
    (lambda p: sf.write(p, np.full(100, 1e-5, np.float32), 22050, subtype="FLOAT"), "silent"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, make, problem):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=problem) as err:
        load_audio(path)
    assert "bad.wav" in str(err.value)
    assert err.value.path == path


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav")
    mp3 = tmp_path / "song.mp3"
    mp3.write_bytes(b"ID3")
    with pytest.raises(AudioError, match=r"song\.mp3: unsupported format '\.mp3'"):
        load_audio(mp3)


def test_nan_samples_are_rejected(tmp_path):
    y = np.full(100, 0.5, np.float32)
    y[10] = np.nan
    sf.write(tmp_path / "nan.wav", y, 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


def test_fix_length_and_peak():
    assert len(fix_length(np.ones(10), 4)) == 4
    padded = fix_length(np.ones(3), 5)
    assert list(padded) == [1, 1, 1, 0, 0]
    assert peak_dbfs(np.array([0.5, -1.0])) == pytest.approx(0.0)
    assert peak_dbfs(np.zeros(3)) == -np.inf


def test_find_audio_files_recurses_folders_and_keeps_named_files(tmp_path, write_tone):
    write_tone("d/a.wav")
    write_tone("d/sub/b.flac")
    (tmp_path / "d" / "notes.txt").write_text("x")
    named = tmp_path / "x.mp3"
    found = find_audio_files([tmp_path / "d", named])
    assert [p.name for p in found] == ["a.wav", "b.flac", "x.mp3"]


def test_find_audio_files_lists_a_file_once_however_it_is_named(tmp_path, write_tone):
    inside = write_tone("d/a.wav")
    write_tone("d/b.wav")
    found = find_audio_files([inside, tmp_path / "d", tmp_path / "d" / ".." / "d" / "a.wav"])
    assert [p.name for p in found] == ["a.wav", "b.wav"]
    assert found[0] == inside  # kept at its first mention


def test_file_sample_rate_reads_the_header_or_says_none(tmp_path, write_tone):
    from helpers.audio import file_sample_rate

    assert file_sample_rate(write_tone("a.wav", sr=8000)) == 8000
    (tmp_path / "bad.wav").write_bytes(b"RIFF nonsense")
    assert file_sample_rate(tmp_path / "bad.wav") is None
    assert file_sample_rate(tmp_path / "missing.wav") is None
