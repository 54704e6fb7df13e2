"""Recordings that two libraries share: found by hashing sample data, kept off both sides of a split.

Sample libraries copy from each other: a SoundFont may hold another's recordings, and a GUS
patch set may be converted from a SoundFont. A model tested on a library whose recordings it
trained on (under another library's name) is tested on memory, so every *voice* of the demo
(one library's preset or drum kit standing in for one class) carries the identities of the
recordings it plays, and :func:`deduplicate` decides, library by library in a fixed order:

- a voice whose recordings all appear in voices already kept is a **duplicate** and is dropped
  (it adds no new sound; e.g. a preset one library copied whole from another);
- a voice that shares some recordings with kept voices of other libraries is kept, and
  **shares** those libraries: :func:`helpers.splits.library_folds` then keeps its clips out of
  every fold that validates or tests on one of them.

:func:`shared_table` lists every pair of voices of two libraries that share a recording, for
notebook 01.

**What counts as one recording.** A copy is rarely bit-identical as a whole: converting a patch
set into a SoundFont trims or pads a few points at the ends (freepats' violin samples are
Merlin's with 31 more points). :func:`recording_ids` therefore fingerprints every sample by
short windows of its PCM data at content-defined anchor points (:func:`fingerprints`), and
joins two samples into one recording when they share at least :data:`MIN_SHARED` of their
windows, or the same whole-data hash. Copies whose points were changed (resampled, rescaled,
filtered) are not found; they are new recordings as far as this module knows.
Used in: helpers/soundfonts.py, helpers/demo.py, notebooks/01_eda.ipynb.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

WINDOW = 32  # points per fingerprint window
ANCHOR_EVERY = 64  # a window starts where a point pair hashes to 0 modulo this (content-defined)
MIN_SHARED = 0.3  # two samples are one recording if they share this fraction of their windows
_WEIGHTS = np.random.default_rng(20261207).integers(1, 2**63, size=WINDOW, dtype=np.uint64)


def fingerprints(pcm: np.ndarray) -> frozenset[int]:
    """Hashes of the :data:`WINDOW`-point windows of int16 ``pcm`` that start at anchor points.

    An anchor is a point whose pair with the next point hashes to 0 modulo
    :data:`ANCHOR_EVERY`, so it depends on the data, not on where the sample starts: a copy
    trimmed or padded at its ends keeps every anchor of the part it kept. Windows with fewer
    than four distinct values (silence, DC) are left out.
    """
    x = np.ascontiguousarray(pcm, dtype=np.int64)
    if len(x) < WINDOW + 1:
        return frozenset()
    pair = (x[:-1] * 1000003 + x[1:] * 7919) & 0xFFFFFFFF
    starts = np.flatnonzero(((pair * 2654435761) >> 16) % ANCHOR_EVERY == 0)
    starts = starts[starts + WINDOW <= len(x)]
    if not len(starts):
        return frozenset()
    windows = x[starts[:, None] + np.arange(WINDOW)]
    distinct = 1 + (np.diff(np.sort(windows, axis=1), axis=1) != 0).sum(axis=1)
    varied = distinct >= 4
    with np.errstate(over="ignore"):
        hashes = (windows[varied].astype(np.uint64) * _WEIGHTS).sum(axis=1)
    return frozenset(int(h) for h in hashes)


def recording_ids(samples: Mapping[Hashable, np.ndarray]) -> dict[Hashable, str]:
    """One identity per recording: samples (any keys, int16 PCM) that are copies of each other
    get the same id (the smallest whole-data hash among them), others their own.

    Copies are samples with the same whole-data hash, or sharing at least :data:`MIN_SHARED` of
    the smaller one's :func:`fingerprints` (and at least two windows).
    """
    from helpers.sources.sf2 import sample_hash

    keys = list(samples)
    whole = {k: sample_hash(samples[k]) for k in keys}
    prints = {k: fingerprints(samples[k]) for k in keys}
    parent = {k: k for k in keys}

    def find(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb, key=lambda r: whole[r])] = min(ra, rb, key=lambda r: whole[r])

    by_hash: dict[str, list] = defaultdict(list)
    for k in keys:
        by_hash[whole[k]].append(k)
    for group in by_hash.values():
        for other in group[1:]:
            union(group[0], other)
    index: dict[int, list] = defaultdict(list)
    for k in keys:
        for h in prints[k]:
            index[h].append(k)
    common: dict[tuple, int] = defaultdict(int)
    for holders in index.values():
        if 1 < len(holders) <= 50:  # a window in very many samples says nothing
            for i, a in enumerate(holders):
                for b in holders[i + 1:]:
                    common[(a, b)] += 1
    for (a, b), n in common.items():
        if n >= 2 and n >= MIN_SHARED * min(len(prints[a]), len(prints[b])):
            union(a, b)
    return {k: whole[find(k)] for k in keys}


@dataclass(frozen=True)
class VoiceRecordings:
    """One voice of one library and the recordings (hashes) it plays."""

    library: str
    label: str
    name: str  # e.g. "Merlin 0:4 Electric piano 1 (tine)"
    recordings: frozenset[str]
    shares: frozenset[str] = frozenset()  # other libraries holding one of its recordings


@dataclass(frozen=True)
class Dedup:
    """The outcome of :func:`deduplicate`: kept voices (with ``shares`` set) and dropped ones,
    each with the kept voices it duplicates."""

    kept: tuple[VoiceRecordings, ...]
    dropped: tuple[tuple[VoiceRecordings, tuple[str, ...]], ...]


def deduplicate(voices: Sequence[VoiceRecordings], order: Sequence[str],
                drop: bool = True) -> Dedup:
    """Drop duplicate voices and mark shared ones, taking libraries in ``order`` (earlier wins).

    A voice without recordings (nothing to compare) is kept as it is. With ``drop=False`` every
    voice is kept and only marked (a duplicate then shares with the library it copies).
    """
    rank = {name: i for i, name in enumerate(order)}
    missing = sorted({v.library for v in voices} - set(rank))
    if missing:
        raise ValueError(f"libraries {missing} are not in the deduplication order {list(order)}")
    kept: list[VoiceRecordings] = []
    dropped = []
    for voice in sorted(voices, key=lambda v: rank[v.library]):
        earlier = [k for k in kept if k.library != voice.library]
        seen = frozenset().union(*(k.recordings for k in earlier)) if earlier else frozenset()
        if drop and voice.recordings and voice.recordings <= seen:
            sources = tuple(sorted({k.name for k in earlier if k.recordings & voice.recordings}))
            dropped.append((voice, sources))
        else:
            kept.append(voice)
    marked = []
    for voice in kept:
        others = frozenset(k.library for k in kept
                           if k.library != voice.library and k.recordings & voice.recordings)
        marked.append(replace(voice, shares=others))
    return Dedup(tuple(marked), tuple(dropped))


def shared_table(voices: Sequence[VoiceRecordings]) -> pd.DataFrame:
    """Every pair of voices of two different libraries that share at least one recording.

    Columns: ``library_a``, ``voice_a``, ``class_a``, ``library_b``, ``voice_b``, ``class_b``,
    ``shared`` (recordings in both), ``of_a`` / ``of_b`` (that count as a fraction of each
    voice's recordings). Sorted by library pair, then by the shared count, largest first.
    """
    rows = []
    for i, a in enumerate(voices):
        for b in voices[i + 1:]:
            if a.library == b.library:
                continue
            common = len(a.recordings & b.recordings)
            if common:
                first, second = (a, b) if a.library < b.library else (b, a)
                rows.append({"library_a": first.library, "voice_a": first.name,
                             "class_a": first.label, "library_b": second.library,
                             "voice_b": second.name, "class_b": second.label, "shared": common,
                             "of_a": round(common / len(first.recordings), 3),
                             "of_b": round(common / len(second.recordings), 3)})
    columns = ["library_a", "voice_a", "class_a", "library_b", "voice_b", "class_b", "shared",
               "of_a", "of_b"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["library_a", "library_b", "shared", "voice_a"],
                             ascending=[True, True, False, True], ignore_index=True)
