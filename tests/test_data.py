"""helpers/data.py against the real FSDKaggle2018 metadata (shipped in helpers/resources/FSDKaggle2018.meta/)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from helpers import data
from helpers.data import (
    ALL_CLASSES,
    AUDIO_TEST_DIR,
    AUDIO_TRAIN_DIR,
    INSTRUMENT_CLASSES,
    META_DIR,
    SUBSETS,
    TEST_CSV,
    TRAIN_CSV,
    DataError,
    MissingAudioWarning,
    classes_of,
    dataset_root,
    encode_labels,
    load_clips,
    load_metadata,
)

FIXTURES = Path(__file__).parents[1] / "helpers" / "resources" / "FSDKaggle2018.meta"

# train total / manually verified / test, from the dataset's metadata (shared README table).
INSTRUMENT_COUNTS = {
    "Acoustic_guitar": (300, 105, 45), "Bass_drum": (300, 67, 28), "Cello": (300, 125, 54),
    "Chime": (115, 66, 29), "Clarinet": (300, 130, 56), "Cowbell": (191, 96, 42),
    "Double_bass": (300, 92, 40), "Electric_piano": (150, 74, 32), "Flute": (300, 128, 55),
    "Glockenspiel": (94, 70, 29), "Gong": (292, 85, 37), "Harmonica": (165, 88, 33),
    "Hi-hat": (300, 89, 39), "Oboe": (299, 99, 42), "Saxophone": (300, 256, 110),
    "Snare_drum": (300, 70, 34), "Tambourine": (221, 92, 40), "Trumpet": (300, 86, 37),
    "Violin_or_fiddle": (300, 250, 108),
}  # fmt: skip


def make_root(tmp_path: Path) -> Path:
    """A dataset root in the real layout holding the real CSVs and empty audio folders."""
    root = tmp_path / "fsd"
    (root / META_DIR).mkdir(parents=True)
    for name in (TRAIN_CSV, TEST_CSV):
        shutil.copy(FIXTURES / name, root / META_DIR / name)
    (root / AUDIO_TRAIN_DIR).mkdir()
    (root / AUDIO_TEST_DIR).mkdir()
    return root


def write_wavs(paths) -> None:
    """Short real WAVs (10 ms of noise, 44.1 kHz mono 16 bit) at the given paths."""
    rng = np.random.default_rng(0)
    for path in paths:
        sf.write(path, 0.1 * rng.standard_normal(441), 44100, subtype="PCM_16")


@pytest.fixture(scope="module")
def meta(tmp_path_factory) -> pd.DataFrame:
    return load_metadata(make_root(tmp_path_factory.mktemp("meta")))


@pytest.fixture
def root(tmp_path) -> Path:
    return make_root(tmp_path)


def test_metadata_sizes_and_columns(meta):
    assert list(meta.columns) == [
        "fname",
        "label",
        "verified",
        "split",
        "freesound_id",
        "license",
        "usage",
        "path",
    ]
    assert (meta["split"] == "train").sum() == 9473
    assert (meta["split"] == "test").sum() == 1600
    assert meta["label"].nunique() == 41
    assert set(meta["label"]) == set(ALL_CLASSES)
    assert meta["verified"].dtype == bool


def test_metadata_test_clips_verified_and_usage(meta):
    test, train = meta[meta["split"] == "test"], meta[meta["split"] == "train"]
    assert test["verified"].all()
    assert set(test["usage"]) == {"Public", "Private"}
    assert train["usage"].isna().all()
    assert 0 < train["verified"].sum() < len(train)


def test_metadata_paths_absolute_and_in_layout(meta):
    for row in (meta.iloc[0], meta.iloc[-1]):
        folder = AUDIO_TRAIN_DIR if row["split"] == "train" else AUDIO_TEST_DIR
        assert row["path"].is_absolute()
        assert row["path"].parent.name == folder
        assert row["path"].name == row["fname"]


def test_no_clip_in_both_splits(meta):
    train = set(meta.loc[meta["split"] == "train", "fname"])
    test = set(meta.loc[meta["split"] == "test", "fname"])
    assert not train & test
    assert meta["fname"].is_unique
    assert meta["freesound_id"].is_unique


def test_instrument_counts_match_readme(meta):
    got = {}
    for label, rows in meta[meta["label"].isin(INSTRUMENT_CLASSES)].groupby("label"):
        train = rows[rows["split"] == "train"]
        got[label] = (
            len(train),
            int(train["verified"].sum()),
            int((rows["split"] == "test").sum()),
        )
    assert got == INSTRUMENT_COUNTS
    assert len(got) == 19


@pytest.mark.parametrize(
    "subset, n", [("seed5", 5), ("keras10", 10), ("instruments19", 19), ("all41", 41)]
)
def test_subset_sizes(root, subset, n):
    clips = load_clips(root, subset, check_files=False)
    assert len(classes_of(clips)) == n
    assert classes_of(clips) == sorted(SUBSETS[subset])


def test_instruments19_is_default_and_sorted(root):
    clips = load_clips(root, check_files=False)
    assert len(clips) == sum(t + s for t, _, s in INSTRUMENT_COUNTS.values())
    assert list(clips.index) == list(range(len(clips)))
    assert clips["split"].iloc[0] == "train" and clips["split"].iloc[-1] == "test"
    train = clips.loc[clips["split"] == "train", ["label", "fname"]]
    assert train.equals(train.sort_values(["label", "fname"]))


def test_explicit_class_list_and_unknown_class(root):
    clips = load_clips(root, ["Gong", "Chime"], check_files=False)
    assert classes_of(clips) == ["Chime", "Gong"]
    with pytest.raises(DataError, match="Kazoo"):
        load_clips(root, ["Gong", "Kazoo"], check_files=False)
    with pytest.raises(DataError, match="seed5"):
        load_clips(root, "no_such_subset", check_files=False)


def test_verified_only(root):
    clips = load_clips(root, "seed5", verified_only=True, check_files=False)
    assert clips["verified"].all()
    expected = sum(INSTRUMENT_COUNTS[c][1] + INSTRUMENT_COUNTS[c][2] for c in SUBSETS["seed5"])
    assert len(clips) == expected


def test_cap_is_stratified_and_deterministic(root):
    a = load_clips(root, "keras10", check_files=False, max_clips_per_class=7, seed=3)
    b = load_clips(root, "keras10", check_files=False, max_clips_per_class=7, seed=3)
    c = load_clips(root, "keras10", check_files=False, max_clips_per_class=7, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["fname"]) != set(c["fname"])
    counts = a.groupby(["split", "label"]).size()
    assert len(counts) == 20 and (counts == 7).all()
    # a clip's draw depends on its fname and the seed only: the subsets agree on shared classes
    small = load_clips(root, "seed5", check_files=False, max_clips_per_class=7, seed=3)
    assert set(small["fname"]) == set(a.loc[a["label"].isin(SUBSETS["seed5"]), "fname"])


def test_cap_keeps_small_classes_whole(root):
    clips = load_clips(root, ["Glockenspiel"], check_files=False, max_clips_per_class=50)
    assert (clips["split"] == "train").sum() == 50
    assert (clips["split"] == "test").sum() == 29


def test_missing_audio_dropped_with_one_warning(root, meta):
    glock = meta[meta["label"] == "Glockenspiel"]
    present = glock.iloc[::10]
    write_wavs(root / Path(p).parent.name / Path(p).name for p in present["path"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips = load_clips(root, ["Glockenspiel"])
    assert len(caught) == 1 and issubclass(caught[0].category, MissingAudioWarning)
    message = str(caught[0].message)
    assert f"{len(glock) - len(present)} of {len(glock)}" in message
    assert sorted(clips["fname"]) == sorted(present["fname"])
    assert all(p.is_file() for p in clips["path"])
    assert sf.info(str(clips["path"].iloc[0])).samplerate == 44100


def test_no_warning_when_all_audio_present(root, meta):
    glock = meta[meta["label"] == "Glockenspiel"]
    write_wavs(root / Path(p).parent.name / Path(p).name for p in glock["path"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clips = load_clips(root, ["Glockenspiel"])
    assert len(clips) == 94 + 29


def test_no_audio_at_all_is_an_error(root):
    with pytest.raises(DataError, match="none of the .* selected clips"):
        load_clips(root, "seed5")


def test_unknown_label_in_csv_names_the_file(root):
    path = root / META_DIR / TRAIN_CSV
    table = pd.read_csv(path)
    table.loc[:2, "label"] = "Kazoo"
    table.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load_metadata(root)
    assert str(path.resolve()) in str(err.value)
    assert "3 row(s)" in str(err.value) and "Kazoo" in str(err.value)


def test_missing_csv_names_the_path_and_the_fix(root):
    path = root / META_DIR / TEST_CSV
    path.unlink()
    with pytest.raises(DataError) as err:
        load_metadata(root)
    assert str(path.resolve()) in str(err.value)
    assert "python -m helpers data fsdkaggle2018" in str(err.value)
    assert "FSDKAGGLE2018_DIR" in str(err.value)


def test_missing_column_names_the_file_and_column(root):
    path = root / META_DIR / TRAIN_CSV
    pd.read_csv(path).drop(columns="manually_verified").to_csv(path, index=False)
    with pytest.raises(DataError, match=r"train_post_competition\.csv.*manually_verified"):
        load_metadata(root)


def test_duplicate_fname_is_an_error(root):
    path = root / META_DIR / TEST_CSV
    table = pd.read_csv(path)
    pd.concat([table, table.iloc[:1]]).to_csv(path, index=False)
    with pytest.raises(DataError, match="duplicate fname"):
        load_metadata(root)


def test_encode_labels_round_trip_and_unknown():
    classes = sorted(SUBSETS["seed5"])
    labels = ["Cello", "Acoustic_guitar", "Saxophone", "Cello"]
    codes = encode_labels(labels, classes)
    assert codes.dtype == np.int64
    assert [classes[i] for i in codes] == labels
    with pytest.raises(DataError, match="Kazoo"):
        encode_labels(["Cello", "Kazoo"], classes)


def test_dataset_root(monkeypatch, tmp_path):
    monkeypatch.setenv("HELPERS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FSDKAGGLE2018_DIR", raising=False)
    assert dataset_root("demo") == tmp_path / "data" / "demo"
    assert dataset_root("fsdkaggle2018") == tmp_path / "data" / "fsdkaggle2018"
    monkeypatch.setenv("FSDKAGGLE2018_DIR", str(tmp_path / "copy"))
    assert dataset_root("fsdkaggle2018") == tmp_path / "copy"
    assert dataset_root("demo") == tmp_path / "data" / "demo"
    with pytest.raises(ValueError, match="demo, fsdkaggle2018"):
        dataset_root("esc50")


def test_module_has_no_shared_paths():
    source = Path(data.__file__).read_text()
    assert "/work/shared" not in source and "../shared" not in source


def test_the_library_column_comes_from_the_sources_file(root):
    meta = load_metadata(root)
    assert "library" not in load_clips(root, check_files=False).columns  # FSDKaggle2018: none
    pd.DataFrame({"fname": meta["fname"], "library": ["a", "b"] * (len(meta) // 2) + ["a"] * (len(meta) % 2)}
                 ).to_csv(root / "sources.csv", index=False)
    clips = load_clips(root, check_files=False)
    assert set(clips["library"]) == {"a", "b"}
    pd.DataFrame({"fname": meta["fname"][:10], "library": "a"}).to_csv(root / "sources.csv", index=False)
    with pytest.raises(DataError, match="sources.csv.*no 'library' entry"):
        load_clips(root, check_files=False)
