"""Datasets: class names, named subsets, and one loader for FSDKaggle2018 and the demo set.

Both datasets share FSDKaggle2018's unpacked layout::

    <root>/FSDKaggle2018.audio_train/*.wav
    <root>/FSDKaggle2018.audio_test/*.wav
    <root>/FSDKaggle2018.meta/train_post_competition.csv
    <root>/FSDKaggle2018.meta/test_post_competition_scoring_clips.csv

so one code path (:func:`load_clips`) serves both.
Used in: notebooks/01_eda.ipynb and every later notebook.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import paths

# The 41 classes of FSDKaggle2018 (DCASE 2018 Task 2), alphabetical.
ALL_CLASSES: tuple[str, ...] = (
    "Acoustic_guitar", "Applause", "Bark", "Bass_drum", "Burping_or_eructation", "Bus",
    "Cello", "Chime", "Clarinet", "Computer_keyboard", "Cough", "Cowbell", "Double_bass",
    "Drawer_open_or_close", "Electric_piano", "Fart", "Finger_snapping", "Fireworks", "Flute",
    "Glockenspiel", "Gong", "Gunshot_or_gunfire", "Harmonica", "Hi-hat", "Keys_jangling",
    "Knock", "Laughter", "Meow", "Microwave_oven", "Oboe", "Saxophone", "Scissors", "Shatter",
    "Snare_drum", "Squeak", "Tambourine", "Tearing", "Telephone", "Trumpet", "Violin_or_fiddle",
    "Writing",
)  # fmt: skip

# The 19 musical-instrument classes.
INSTRUMENT_CLASSES: tuple[str, ...] = (
    "Acoustic_guitar", "Bass_drum", "Cello", "Chime", "Clarinet", "Cowbell", "Double_bass",
    "Electric_piano", "Flute", "Glockenspiel", "Gong", "Harmonica", "Hi-hat", "Oboe",
    "Saxophone", "Snare_drum", "Tambourine", "Trumpet", "Violin_or_fiddle",
)  # fmt: skip

# Named subsets: which classes a run uses.
SUBSETS: dict[str, tuple[str, ...]] = {
    # the 5 classes of the seed student project
    "seed5": ("Acoustic_guitar", "Cello", "Clarinet", "Double_bass", "Saxophone"),
    # the 10 classes of the well-known Keras audio-classification tutorial
    "keras10": (
        "Acoustic_guitar", "Bass_drum", "Cello", "Clarinet", "Double_bass", "Flute", "Hi-hat",
        "Saxophone", "Snare_drum", "Violin_or_fiddle",
    ),
    "instruments19": INSTRUMENT_CLASSES,
    "all41": ALL_CLASSES,
}  # fmt: skip

TRAIN_CSV = "train_post_competition.csv"
TEST_CSV = "test_post_competition_scoring_clips.csv"
AUDIO_TRAIN_DIR = "FSDKaggle2018.audio_train"
AUDIO_TEST_DIR = "FSDKaggle2018.audio_test"
META_DIR = "FSDKaggle2018.meta"

_DATASETS = ("demo", "fsdkaggle2018")
_COLUMNS = ("fname", "label", "verified", "split", "freesound_id", "license", "usage", "path")

# Where a clip's source library is recorded, first match wins: a user's own ``sources.csv``
# (columns fname, library) beside the metadata folder, or the demo set's ``demo_sources.csv``
# (its SoundFont). FSDKaggle2018 records no library. See :func:`attach_library`.
LIBRARY_COLUMN = "library"
LIBRARY_FILES: tuple[tuple[str, str], ...] = (("sources.csv", "library"),
                                              ("demo_sources.csv", "library"))
SHARES_COLUMN = "shares"  # other libraries a clip's recordings appear in (demo: deduplication)
_TRAIN_COLUMNS = ("fname", "label", "manually_verified", "freesound_id", "license")
_TEST_COLUMNS = ("fname", "label", "usage", "freesound_id", "license")
_HINT = (
    "Get the data with `python -m helpers data fsdkaggle2018` (download, about 4.6 GiB), "
    "build the offline demo set with `python -m helpers data demo`, or point "
    "$FSDKAGGLE2018_DIR at an unpacked copy of FSDKaggle2018."
)


class DataError(ValueError):
    """A dataset file is missing or malformed; the message names the file and the problem."""


class MissingAudioWarning(UserWarning):
    """Some clips of the metadata have no audio file; :func:`load_clips` dropped them."""


def dataset_root(name: str) -> Path:
    """Folder of a dataset: ``"demo"`` or ``"fsdkaggle2018"`` (``$FSDKAGGLE2018_DIR`` wins).

    Used in: every notebook's setup cell, helpers/download.py.
    """
    if name == "demo":
        return paths.data_dir() / "demo"
    if name == "fsdkaggle2018":
        env = os.environ.get("FSDKAGGLE2018_DIR", "").strip()
        return Path(env).expanduser() if env else paths.data_dir() / "fsdkaggle2018"
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(_DATASETS)}")


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """One metadata CSV, checked for presence and columns."""
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found. {_HINT}")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot parse as CSV ({err})") from err
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    return table


def _check_labels(table: pd.DataFrame, path: Path) -> None:
    """Every label must be one of the 41 classes."""
    bad = table.loc[~table["label"].isin(ALL_CLASSES), "label"]
    if len(bad):
        examples = sorted(map(str, bad.unique()))[:5]
        raise DataError(
            f"{path}: {len(bad)} row(s) have labels outside the {len(ALL_CLASSES)} "
            f"FSDKaggle2018 classes, e.g. {examples}"
        )


def _check_unique(fnames: pd.Series, where: str) -> None:
    """No fname may appear twice (within a file or across the two splits)."""
    dup = fnames[fnames.duplicated()]
    if len(dup):
        raise DataError(f"{where}: {len(dup)} duplicate fname(s), e.g. {sorted(dup.unique())[:5]}")


def _split_table(root: Path, split: str) -> pd.DataFrame:
    """The train or test CSV in the common column layout."""
    name, columns, audio = (
        (TRAIN_CSV, _TRAIN_COLUMNS, AUDIO_TRAIN_DIR)
        if split == "train"
        else (TEST_CSV, _TEST_COLUMNS, AUDIO_TEST_DIR)
    )
    path = root / META_DIR / name
    raw = _read_csv(path, columns)
    _check_labels(raw, path)
    _check_unique(raw["fname"], str(path))
    table = raw.assign(
        split=split,
        verified=raw["manually_verified"].astype(bool) if split == "train" else True,
        usage=raw["usage"] if split == "test" else pd.NA,
        path=[root / audio / f for f in raw["fname"]],
    )
    return table.loc[:, list(_COLUMNS)]


def load_metadata(root: Path) -> pd.DataFrame:
    """Both official splits as one table; reads only the two CSVs (no audio needed).

    Columns: fname, label, verified (bool; every test clip is verified), split ('train' or
    'test'), freesound_id, license, usage (test only, else NA), path (absolute audio path).
    Used in: notebooks/01_eda.ipynb, :func:`load_clips`.
    """
    root = Path(root).expanduser().resolve()
    table = pd.concat([_split_table(root, "train"), _split_table(root, "test")], ignore_index=True)
    _check_unique(table["fname"], f"{root / META_DIR / TRAIN_CSV} and {TEST_CSV}")
    return table.astype({"usage": "string", "freesound_id": "int64"})


def subset_classes(subset: str | Sequence[str]) -> tuple[str, ...]:
    """The sorted classes of a named subset (see ``SUBSETS``) or of an explicit class list.

    Used in: :func:`load_clips`.
    """
    if isinstance(subset, str):
        if subset not in SUBSETS:
            raise DataError(
                f"unknown subset {subset!r}; choose one of {sorted(SUBSETS)} "
                "or pass a list of class names"
            )
        return tuple(sorted(SUBSETS[subset]))
    unknown = sorted(set(subset) - set(ALL_CLASSES))
    if unknown or len(subset) == 0:
        raise DataError(
            f"subset: unknown class name(s) {unknown} (or an empty list); "
            f"valid names are the FSDKaggle2018 classes {list(ALL_CLASSES)}"
        )
    return tuple(sorted(set(subset)))


def _stable_key(fnames: pd.Series, seed: int) -> np.ndarray:
    """A pseudo-random number per clip that depends only on (seed, fname)."""
    digest = (hashlib.blake2b(f"{seed}:{f}".encode(), digest_size=8).digest() for f in fnames)
    return np.fromiter(
        (int.from_bytes(d, "little") for d in digest), dtype=np.uint64, count=len(fnames)
    )


def cap_per_class(table: pd.DataFrame, max_clips: int, seed: int = 0) -> pd.DataFrame:
    """At most ``max_clips`` clips of each class in each split, drawn reproducibly.

    A clip's draw depends only on ``seed`` and its fname, so a clip kept from one subset is
    also kept from any other subset holding its class. Used in: :func:`load_clips` (``max_clips_per_class``, e.g. the smoke profile).
    """
    if max_clips < 1:
        raise ValueError(f"max_clips_per_class must be >= 1, got {max_clips}")
    keyed = table.assign(_key=_stable_key(table["fname"], seed)).sort_values(["_key", "fname"])
    return keyed.groupby(["split", "label"], sort=False).head(max_clips).drop(columns="_key")


def _drop_missing_audio(table: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Rows whose audio file exists; one warning counts (and names a few of) the rest."""
    present = np.array([p.is_file() for p in table["path"]], dtype=bool)
    if present.all():
        return table
    missing = table.loc[~present, "fname"].tolist()
    if not present.any():
        raise DataError(
            f"{root}: none of the {len(table)} selected clips has an audio file "
            f"in {AUDIO_TRAIN_DIR}/ or {AUDIO_TEST_DIR}/. {_HINT}"
        )
    warnings.warn(
        f"{root}: {len(missing)} of {len(table)} selected clips have no audio file and were "
        f"dropped (e.g. {', '.join(missing[:5])})",
        MissingAudioWarning,
        stacklevel=3,
    )
    return table.loc[present]


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    """Train before test, then by label and fname, index reset."""
    order = table["split"].map({"train": 0, "test": 1})
    table = table.assign(_order=order).sort_values(["_order", "label", "fname"])
    return table.drop(columns="_order").reset_index(drop=True)


def load_clips(
    root: Path,
    subset: str | Sequence[str] = "instruments19",
    verified_only: bool = False,
    check_files: bool = True,
    max_clips_per_class: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The clips of a run: metadata filtered to a subset, sorted (train first), index reset.

    ``verified_only`` keeps manually verified labels only; ``check_files`` drops rows without
    an audio file (one :class:`MissingAudioWarning`); ``max_clips_per_class`` caps each class
    in each split (see :func:`cap_per_class`). Columns as in :func:`load_metadata`, plus
    ``library`` where the dataset records each clip's source (:func:`attach_library`).
    Used in: every notebook, helpers/tune_command.py.
    """
    table = load_metadata(root)
    table = table.loc[table["label"].isin(subset_classes(subset))]
    if verified_only:
        table = table.loc[table["verified"]]
    if check_files:
        table = _drop_missing_audio(table, Path(root))
    if max_clips_per_class is not None:
        table = cap_per_class(table, max_clips_per_class, seed)
    return _sorted(attach_library(table, Path(root)))


def attach_library(table: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Add the ``library`` column (the sample library or source each clip comes from), if known.

    Read from ``<root>/sources.csv`` (``fname,library``: a user's own multi-source data) or
    ``<root>/demo_sources.csv`` (the demo's library), and with it the ``shares`` column where the
    file has one (the other libraries holding one of the clip's recordings, ";"-separated;
    :func:`helpers.splits.library_folds` keeps such clips off both sides of a split). Without
    either file (FSDKaggle2018) the
    table is returned unchanged. A clip the file does not list is a :class:`DataError`.
    Used in: :func:`load_clips`; :func:`helpers.splits.library_directions` reads the column.
    """
    for name, column in LIBRARY_FILES:
        path = Path(root) / name
        if not path.is_file():
            continue
        sources = _read_csv(path, ("fname", column))
        library = dict(zip(sources["fname"].astype(str), sources[column].astype(str)))
        unlisted = sorted(set(table["fname"].astype(str)) - set(library))
        if unlisted:
            raise DataError(f"{path}: {len(unlisted)} clip(s) of the metadata have no {column!r} "
                            f"entry, e.g. {unlisted[:5]}")
        table = table.assign(**{LIBRARY_COLUMN: table["fname"].astype(str).map(library)})
        if SHARES_COLUMN in sources.columns:
            shares = dict(zip(sources["fname"].astype(str),
                              sources[SHARES_COLUMN].fillna("").astype(str)))
            table = table.assign(**{SHARES_COLUMN: table["fname"].astype(str).map(shares)})
        return table
    return table


def classes_of(table: pd.DataFrame) -> list[str]:
    """The sorted unique labels of a clip table. Used in: helpers/experiment.py."""
    return sorted(table["label"].unique())


def encode_labels(labels: Iterable[str], classes: Sequence[str]) -> np.ndarray:
    """Class indices (int64) of ``labels`` in ``classes``. Used in: helpers/features.py."""
    index = {c: i for i, c in enumerate(classes)}
    labels = list(labels)
    unknown = sorted({str(lab) for lab in labels if lab not in index})
    if unknown:
        raise DataError(f"labels: {unknown} not among the {len(classes)} classes {list(classes)}")
    return np.array([index[lab] for lab in labels], dtype=np.int64)


def shipped_metadata_root() -> Path:
    """A root holding the REAL FSDKaggle2018 metadata CSVs shipped with the package.

    ``load_metadata(shipped_metadata_root())`` works without any download (the audio is not
    shipped: ``check_files`` must be off). Used in: notebooks/01_eda.ipynb.
    """
    return Path(__file__).parent / "resources"
