"""Simulated rooms, microphones and background noise, applied to mono waveforms.

One model of the recording chain, shared by the demo set (:func:`simulate_recording` dresses
every rendered note up as a Freesound upload), by the test-time perturbations of
:mod:`helpers.perturb` (notebook 04's robustness check) and by the waveform augmentation of
:mod:`helpers.augment_audio` (its rooms and its noise):

* **Room**: :func:`room_impulse_response` is a direct impulse followed, after a short
  predelay, by exponentially decaying noise darkened by a first-order low-pass; the tail falls
  60 dB in RT60 seconds and carries ``drr_db`` less energy than the direct sound
  (direct-to-reverberant ratio). :func:`reverberate` convolves a clip with it.
* **Noise**: :func:`coloured_noise` draws white, pink (1/f), brown (1/f^2) noise or mains hum,
  :func:`sloped_noise` noise of any spectral slope; :func:`mix_at_snr` adds it at a
  signal-to-noise ratio.
* **Microphone**: random shelf, peak and pass filters (:func:`apply_eq`), a level drift
  (:func:`level_envelope`), short fades and a peak level.

**Signal-to-noise ratio, the one definition used everywhere in this project**::

    SNR = 10 log10(P_signal / P_noise) dB

``P_noise`` is the noise's mean power (mean of its squared samples over the whole clip).
``P_signal`` is the signal's *active* power (:func:`active_power`): the mean power of its
1024-sample frames that lie within 20 dB of its loudest frame, i.e. of the part that sounds
(the idea of ITU-T P.56's active speech level). Silence around a note does not dilute the
signal's power, so "20 dB SNR" means the noise sits 20 dB below the note whether or not the
clip starts with a second of silence. :func:`snr_db` measures it, :func:`mix_at_snr` sets it.
Used in: helpers/demo.py (the demo set's recording chain), helpers/perturb.py,
helpers/augment_audio.py, helpers/calibration.py (coloured noise of the synthetic sounds).
"""

from __future__ import annotations

import numpy as np

ACTIVE_FRAME = 1024  # samples per frame of active_power (46 ms at 22,050 Hz)
ACTIVE_RANGE_DB = 20.0  # frames this far below the loudest one count as silence
# Amplitude factor ln(1000) to four decimals: the tail's envelope exp(-6.9078 t / rt60) falls
# by 1000 (60 dB) at t = rt60. The demo set was rendered with these four decimals; more would
# change its bytes by rounding only.
LN_1000 = 6.9078
MAX_TAIL_SECONDS = 3.0  # a room's tail lasts 1.2 * RT60, at most this long
TAIL_CUTOFF_HZ = (2000.0, 9000.0)  # range of the tail's low-pass (walls absorb the highs)
PREDELAY_SECONDS = (0.003, 0.03)  # range of the gap between the direct sound and the tail
NOISE_COLOURS: tuple[str, ...] = ("white", "pink", "brown", "hum")


# --------------------------------------------------------------------------------------------
# Signal-to-noise ratio
# --------------------------------------------------------------------------------------------

def active_power(x: np.ndarray, frame: int = ACTIVE_FRAME) -> float:
    """Mean power of the frames within 20 dB of the loudest one (the sounding part of ``x``).

    ``x`` (n,); a clip shorter than one frame counts whole; an empty one has power 0.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return 0.0
    n = max(1, len(x) // frame)
    frames = np.mean(x[: n * frame].reshape(n, -1) ** 2, axis=1) if len(x) >= frame else \
        np.array([np.mean(x**2)])
    return float(np.mean(frames[frames >= frames.max() * 10 ** (-ACTIVE_RANGE_DB / 10)]))


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """The SNR in dB of ``signal`` over ``noise`` (module docstring: active over mean power)."""
    noise = np.asarray(noise, dtype=np.float64)
    return 10.0 * np.log10(active_power(signal) / np.mean(noise**2))


def mix_at_snr(x: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """``x`` plus unit-RMS ``noise`` scaled so that :func:`snr_db` of the two is ``snr`` dB.

    ``noise`` must have unit RMS, as :func:`coloured_noise` and :func:`white_noise` return it
    (else ValueError), so the gain is ``sqrt(active_power(x) / 10**(snr / 10))``. ``x`` and
    ``noise`` (n,); returns float64 (n,). A silent ``x`` raises ValueError.
    """
    x = np.asarray(x, dtype=np.float64)
    noise_power = float(np.mean(np.square(noise)))
    if not abs(noise_power - 1.0) < 1e-6:
        raise ValueError(f"noise must have unit RMS (coloured_noise, white_noise); its power "
                         f"is {noise_power:.6g}")
    signal_power = active_power(x)
    if signal_power <= 0:
        raise ValueError("cannot set an SNR on a silent clip (its active power is 0)")
    return x + noise * np.sqrt(signal_power / 10 ** (snr / 10))


def _unit_rms(y: np.ndarray) -> np.ndarray:
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def white_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS white Gaussian noise (n,)."""
    return _unit_rms(rng.standard_normal(n))


def _shaped_noise(rng: np.random.Generator, n: int, exponent: float, sr: int) -> np.ndarray:
    """Unit-RMS Gaussian noise whose amplitude spectrum falls as 1/f**exponent (above 20 Hz)."""
    from scipy.fft import next_fast_len

    m = next_fast_len(n, real=True)
    spectrum = np.fft.rfft(rng.standard_normal(m))
    f = np.maximum(np.fft.rfftfreq(m, 1 / sr), 20.0)
    return _unit_rms(np.fft.irfft(spectrum / f ** exponent, m)[:n])


def coloured_noise(rng: np.random.Generator, n: int, colour: str, sr: int) -> np.ndarray:
    """Unit-RMS background noise (n,): 'white', 'pink' (1/f), 'brown' (1/f^2) or mains 'hum'."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"unknown noise colour {colour!r}; choose one of {NOISE_COLOURS}")
    if colour == "white":
        return white_noise(rng, n)
    if colour == "hum":
        t = np.arange(n) / sr
        f0 = float(rng.choice([50.0, 60.0]))
        y = sum(rng.uniform(0.1, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3))
                for k in range(1, 8))
        return _unit_rms(y + 0.1 * rng.standard_normal(n))
    return _shaped_noise(rng, n, 0.5 if colour == "pink" else 1.0, sr)


def sloped_noise(rng: np.random.Generator, n: int, db_per_octave: float, sr: int) -> np.ndarray:
    """Unit-RMS noise (n,) whose power spectrum changes by ``db_per_octave`` per octave.

    0 is white, -3 pink, -6 brown; positive slopes (+3 blue, +6 violet) are bright hiss.
    """
    return _shaped_noise(rng, n, -db_per_octave / (20 * np.log10(2.0)), sr)


# --------------------------------------------------------------------------------------------
# Rooms
# --------------------------------------------------------------------------------------------

def room_impulse_response(rng: np.random.Generator, rt60: float, drr_db: float,
                          sr: int) -> np.ndarray:
    """A synthetic room: a direct impulse plus exponentially decaying, darkened noise.

    The tail's envelope falls 60 dB in ``rt60`` seconds and lasts ``1.2 * rt60`` (at most
    ``MAX_TAIL_SECONDS``); its brightness (a first-order low-pass drawn from
    ``TAIL_CUTOFF_HZ``) and its predelay (drawn from ``PREDELAY_SECONDS``) vary from room to
    room; its energy is ``drr_db`` below the direct sound's (direct-to-reverberant ratio;
    0 dB: as much reverberant energy as direct). Returns float64 (n,), ``ir[0] == 1``.
    """
    from scipy import signal

    if rt60 <= 0:
        raise ValueError(f"rt60 must be positive, got {rt60}")
    n = max(2, int(sr * min(1.2 * rt60, MAX_TAIL_SECONDS)))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-LN_1000 * t / rt60)
    cutoff = min(rng.uniform(*TAIL_CUTOFF_HZ), 0.45 * sr)
    tail = signal.sosfilt(signal.butter(1, cutoff, "lowpass", fs=sr, output="sos"), tail)
    predelay = max(1, int(sr * rng.uniform(*PREDELAY_SECONDS)))
    tail[:predelay] = 0
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail**2))
    tail[0] = 1.0
    return tail


def reverberate(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Convolve ``x`` with an impulse response, keeping the clip's length (the tail is cut)."""
    from scipy import signal

    return signal.fftconvolve(x, ir)[: len(x)]


# --------------------------------------------------------------------------------------------
# Microphone: tone, level, edges
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# The demo set's random recording chain
# --------------------------------------------------------------------------------------------

def simulate_recording(x: np.ndarray, rng: np.random.Generator,
                       sr: int) -> tuple[np.ndarray, dict]:
    """Record a dry rendering with a random microphone in a random room; then set the peak.

    In order: a level drift or fade, zero to two EQ filters, for 75 % of clips a room (RT60
    log-uniform in 0.15-2.5 s, direct-to-reverberant ratio uniform in -6 to +15 dB), background
    noise (white 30 %, pink 35 %, brown 20 %, hum 15 %) at an SNR uniform in 10-60 dB, short
    edge fades, and a peak uniform in -18 to -1 dBFS. Returns the audio (n,) and what was drawn
    (the demo_sources.csv columns ``level``, ``eq``, ``rt60_s``, ``drr_db``, ``noise``,
    ``snr_db``, ``peak_dbfs``). Used in: helpers/demo.py (data/README.md describes it).
    """
    gain, level = level_envelope(rng, len(x))
    x, eq = apply_eq(x.astype(np.float64) * gain, rng, sr)
    rt60 = drr = 0.0
    if rng.random() < 0.75:
        rt60 = log_uniform(rng, 0.15, 2.5)
        drr = float(rng.uniform(-6.0, 15.0))
        x = reverberate(x, room_impulse_response(rng, rt60, drr, sr))
    colour = str(rng.choice(NOISE_COLOURS, p=[0.3, 0.35, 0.2, 0.15]))
    snr = float(rng.uniform(10.0, 60.0))
    x = mix_at_snr(x, coloured_noise(rng, len(x), colour, sr), snr)
    peak = float(rng.uniform(-18.0, -1.0))
    x = normalise_peak(fade_edges(x, sr), peak)
    return x, {"level": level, "eq": eq, "rt60_s": round(rt60, 3), "drr_db": round(drr, 1),
               "noise": colour, "snr_db": round(snr, 1), "peak_dbfs": round(peak, 2)}
