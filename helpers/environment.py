"""What a run ran on: the machine, the packages and the numeric settings that shape its numbers.

Two machines of the same kind can train the same commit to different weights when their CPUs
differ (see :data:`helpers.PINNED`), and package versions change numbers too. A run therefore
records where it ran: :func:`describe` gathers the CPU model, the instruction-set flags the
numeric libraries dispatch on, the cache sizes, the versions of the packages that compute, and
the pinned settings as this process sees them. ``python -m helpers chain`` writes it beside its
timings (``results/environment_<profile>.json``); ``python -m helpers environment`` prints it.
Nothing here imports TensorFlow or numpy.
Used in: helpers/chain.py, helpers/cli.py.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

# Packages whose versions change numbers (numeric kernels, features, models, augmentation).
PACKAGES: tuple[str, ...] = (
    "numpy", "scipy", "pandas", "scikit-learn", "librosa", "soundfile", "soxr", "tensorflow",
    "tf-keras", "tensorflow-model-optimization", "keras-tuner", "audiomentations",
    "pyroomacoustics", "tinysoundfont", "pooch",
)
# CPU flags the numeric libraries choose their code by.
FLAGS: tuple[str, ...] = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
                          "avx_vnni")


def cpu() -> dict:
    """CPU model, the flags of :data:`FLAGS` it has, cores and cache sizes (Linux; else less)."""
    info = {"model": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "flags": [], "caches": {}}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            info["model"] = value.strip()
        elif key.strip() == "flags":
            present = set(value.split())
            info["flags"] = [f for f in FLAGS if f in present]
            break
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind != "Instruction":
            info["caches"][f"L{level}{'d' if kind == 'Data' else ''}"] = size
    return info


def packages(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (None: not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def describe() -> dict:
    """Everything above, plus Python, the platform and the pinned settings in force."""
    from helpers import PINNED

    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu(),
            "packages": packages(),
            "settings": {name: os.environ.get(name) for name in PINNED},
            "settings_pinned": {name: os.environ.get(name) == value
                                for name, value in PINNED.items()}}
