"""Real unknowns (other GM instruments rendered like the demo) and the OOD measures.

Rendering tests build a few clips from TimGM6mb (pip: pretty_midi) with ``HELPERS_DATA_DIR``
pointing at an empty folder, so they need none of the Debian packages and download nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import unknowns
from helpers.calibration import OODDetector
from helpers.data import INSTRUMENT_CLASSES
from helpers.soundfonts import CLASS_VOICES, font_options, plan_performance, plan_voices
from helpers.sources.debian import DEBIAN_PACKAGES
from helpers.sources.libraries import FONTS, GM_DRUM_KEY, GM_PROGRAM, HIHAT_KEYS
from helpers.unknowns import (
    UNKNOWN_VOICES,
    UnknownsConfig,
    auroc,
    build_unknowns,
    flag_rate,
    leave_one_class_out,
    level_invariance,
)

TINY = UnknownsConfig(clips_per_voice=1, voices=("Acoustic_grand_piano", "Toms"),
                      libraries=("TimGM6mb",))


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def offline_data(tmp_path_factory):
    """An empty data folder: only the pip SoundFonts can be found."""
    folder = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HELPERS_DATA_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def tiny(offline_data) -> Path:
    return build_unknowns(offline_data / "a" / "unknowns", TINY, progress=False)


# ---- which sounds: never one of the 18 classes ----------------------------------------------

def test_unknown_voices_are_no_class_program_or_key():
    class_programs = unknowns.class_programs() | set(GM_PROGRAM.values())
    class_keys = (unknowns.class_drum_keys() | set(GM_DRUM_KEY.values())
                  | set(HIHAT_KEYS.values()))
    assert class_programs == unknowns.class_programs()  # the table covers the built fonts' map
    for label, voice in UNKNOWN_VOICES.items():
        assert label not in INSTRUMENT_CLASSES and label not in CLASS_VOICES
        if voice.is_drum:
            assert voice.program is None and not set(voice.drum_keys) & class_keys, label
        else:
            assert voice.program not in class_programs, label
            assert voice.program not in unknowns.NEAR_CLASS_PROGRAMS, label


def test_unknown_voice_names_are_their_general_midi_names():
    pretty_midi = pytest.importorskip("pretty_midi")
    words = {"Toms": "Tom", "Cymbals": "Cymbal", "Congas_bongos": ("Conga", "Bongo")}
    for label, voice in UNKNOWN_VOICES.items():
        if voice.is_drum:
            for key in voice.drum_keys:
                name = pretty_midi.note_number_to_drum_name(key)
                assert any(w in name for w in np.atleast_1d(words[label])), (label, key, name)
        else:
            assert voice.name == pretty_midi.program_to_instrument_name(voice.program)


def test_plan_voices_draws_exactly_as_plan_performance():
    """The unknowns' planner is the demo's: same rng, same class voices, same performance."""
    font = FONTS["TimGM6mb"]
    path = unknowns.font_file(font)
    options = font_options(font, path)
    for label in ("Saxophone", "Snare_drum", "Chime", "Acoustic_guitar"):
        mine = [o for o in options if o.voice in CLASS_VOICES[label]]
        for seed in range(5):
            expected = plan_performance(np.random.default_rng(seed), label, mine,
                                        min_seconds=0.3, max_seconds=10.0)
            got = plan_voices(np.random.default_rng(seed), CLASS_VOICES[label], mine,
                                      min_seconds=0.3, max_seconds=10.0)
            assert got == expected, (label, seed)


def test_catalogue_never_plays_a_class_recording(offline_data):
    catalogue = unknowns.load_unknown_catalogue(("TimGM6mb",), tuple(UNKNOWN_VOICES),
                                                progress=False)
    assert catalogue.missing == {}
    assert set(catalogue.options["TimGM6mb"]) == set(UNKNOWN_VOICES)  # TimGM6mb has them all
    # TimGM6mb's TR 808 toms layer the bass drum's sine: those keys are dropped, not played.
    dropped = catalogue.dropped
    assert ((dropped["label"] == "Toms") & (dropped["program"] == 25)).any()
    for opt in catalogue.options["TimGM6mb"]["Toms"]:
        assert opt.program != 25
    assert "Merlin" not in catalogue.unchecked  # pip: its class recordings were checked too


def test_keys_that_are_not_the_named_drum_are_left_out():
    """The AVL kits' non-GM keys (read on a stand-in font: TimGM6mb's file under AVL's name)."""
    stand_in = replace(FONTS["TimGM6mb"], name="AVL-RedZeppelin", drum_kits=(0,))
    path = unknowns.font_file(FONTS["TimGM6mb"])
    drums = {k: v for k, v in UNKNOWN_VOICES.items() if v.is_drum}
    keys = {(o.voice.name, o.keys[0]) for o in unknowns.voice_key_options(stand_in, path, drums)}
    played = {k for _, k in keys}
    assert not played & {48, 50, 60, 61}
    assert {41, 43, 45, 47, 49, 51, 62, 63, 64} <= played
    plain = {o.keys[0] for o in unknowns.voice_key_options(FONTS["TimGM6mb"], path, drums)
             if o.program == 0}
    assert {48, 50, 60, 61} <= plain


# ---- the build: deterministic, stamped, atomic ----------------------------------------------

def test_build_layout_and_table(tiny):
    table = pd.read_csv(tiny / unknowns.UNKNOWNS_CSV)
    assert list(table.columns[:9]) == ["fname", "path", "label", "gm_name", "gm", "program",
                                       "kit", "library", "split"]
    assert len(table) == 2 and set(table["label"]) == set(TINY.voices)
    assert (table["split"] == "test").all() and (table["library"] == "TimGM6mb").all()
    assert sorted(p.name for p in (tiny / "audio").iterdir()) == sorted(table["fname"])
    piano = table[table["label"] == "Acoustic_grand_piano"].iloc[0]
    toms = table[table["label"] == "Toms"].iloc[0]
    assert piano["program"] == 0 and pd.isna(piano["kit"]) and piano["is_drum"] == 0
    assert pd.isna(toms["program"]) and toms["is_drum"] == 1
    played = {int(k) for k in str(toms["keys"]).split()}
    assert played <= set(UNKNOWN_VOICES["Toms"].drum_keys)
    assert not played & unknowns.class_drum_keys()
    loaded = unknowns.load_unknowns(tiny)
    assert all(Path(p).is_file() for p in loaded["path"])


def test_same_seed_same_bytes_and_stamp(tiny, offline_data):
    again = build_unknowns(offline_data / "b" / "unknowns", TINY, progress=False)
    assert all_files(again) == all_files(tiny)
    stamp = json.loads((tiny / unknowns.STAMP).read_text())
    assert stamp["config"]["voices"] == list(TINY.voices)
    assert "missing_libraries" not in stamp
    other = build_unknowns(offline_data / "c" / "unknowns",
                           UnknownsConfig(clips_per_voice=1, voices=TINY.voices,
                                          libraries=TINY.libraries, seed=1), progress=False)
    assert all_files(other) != all_files(tiny)


def test_reuse_and_interrupted_rebuild_keep_the_complete_folder(tiny, offline_data, monkeypatch):
    before = all_files(tiny)

    def boom(job):
        raise KeyboardInterrupt

    monkeypatch.setattr(unknowns, "write_clip", boom)
    assert build_unknowns(tiny, TINY, progress=False) == tiny  # reused: nothing rendered
    with pytest.raises(KeyboardInterrupt):
        build_unknowns(tiny, TINY, force=True, progress=False)
    assert all_files(tiny) == before
    assert not list(tiny.parent.glob(".unknowns.tmp-*"))  # the half build was removed
    assert unknowns.is_complete(tiny, TINY)


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an unknowns set"):
        build_unknowns(tmp_path, TINY, progress=False)


def _fake_unpacked_a320u(data: Path, content: bytes) -> None:
    """``data/sources/denemo-data`` as fetch_package leaves it, its A320U.sf2 = ``content``."""
    package = DEBIAN_PACKAGES["denemo-data"]
    folder = data / "sources" / package.name
    sf2 = folder / FONTS["A320U"].relpath
    sf2.parent.mkdir(parents=True)
    sf2.write_bytes(content)
    (folder / ".complete").write_text(json.dumps(package.stamp()))


def test_missing_library_is_skipped_counted_and_stamped(offline_data, tmp_path, monkeypatch):
    config = UnknownsConfig(clips_per_voice=2, voices=("Sitar",), libraries=("TimGM6mb", "A320U"))
    root = build_unknowns(offline_data / "d" / "unknowns", config, progress=False)
    libs = pd.read_csv(root / unknowns.LIBRARIES_CSV).set_index("library")
    assert libs.loc["A320U", "status"] == "missing" and libs.loc["A320U", "clips"] == 0
    assert "denemo-data is not unpacked" in libs.loc["A320U", "reason"]
    assert libs.loc["TimGM6mb", "clips"] == 2
    assert set(pd.read_csv(root / unknowns.UNKNOWNS_CSV)["library"]) == {"TimGM6mb"}
    stamp = json.loads((root / unknowns.STAMP).read_text())
    assert stamp["missing_libraries"] == ["A320U"]
    assert unknowns.is_complete(root, config)  # reused while A320U is still missing ...
    monkeypatch.setenv("HELPERS_DATA_DIR", str(tmp_path))
    _fake_unpacked_a320u(tmp_path, unknowns.font_file(FONTS["TimGM6mb"]).read_bytes())
    assert not unknowns.is_complete(root, config)  # ... rebuilt once it is there


def test_no_library_at_all_raises(offline_data):
    config = UnknownsConfig(clips_per_voice=1, voices=("Sitar",), libraries=("A320U",))
    with pytest.raises(RuntimeError, match="A320U"):
        build_unknowns(offline_data / "e" / "unknowns", config, progress=False)


def test_damaged_soundfont_is_reported_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HELPERS_DATA_DIR", str(tmp_path))
    _fake_unpacked_a320u(tmp_path, b"not a soundfont")
    fonts, missing = unknowns.locate_fonts(["A320U", "TimGM6mb"])
    assert "A320U" not in fonts and "TimGM6mb" in fonts
    assert "not a SoundFont 2 file" in missing["A320U"]


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="voices"):
        UnknownsConfig(voices=("Violin_or_fiddle",))
    with pytest.raises(ValueError, match="libraries"):
        UnknownsConfig(libraries=("nope",))
    with pytest.raises(ValueError, match="clips_per_voice"):
        UnknownsConfig(clips_per_voice=0)


# ---- measures ---------------------------------------------------------------------------------

def test_auroc_perfect_reversed_random_and_ties():
    known, unknown = np.array([0.1, 0.2, 0.3]), np.array([0.4, 0.5])
    assert auroc(known, unknown) == 1.0
    assert auroc(unknown, known) == 0.0
    assert auroc([1.0, 1.0], [1.0, 1.0, 1.0]) == 0.5
    rng = np.random.default_rng(0)
    assert abs(auroc(rng.normal(size=4000), rng.normal(size=4000)) - 0.5) < 0.03
    assert auroc([0.0, 2.0], [1.0]) == 0.5  # one of two known clips below the unknown
    with pytest.raises(ValueError, match="finite"):
        auroc([0.1, np.nan], [0.2])
    with pytest.raises(ValueError, match="non-empty"):
        auroc([], [0.2])


def test_flag_rate_counts_scores_above_the_threshold():
    assert flag_rate([0.1, 0.5, 0.9, 1.0], 0.5) == 0.5  # 0.5 itself is accepted
    assert flag_rate([0.1], 1.0) == 0.0


def _gaussians(means, n=60, sd=0.5, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(m, sd, size=(n, 2)) for m in means])
    return X, np.repeat(np.arange(len(means)), n)


def _mahalanobis(train_x, train_y):
    return OODDetector.fit("mahalanobis", train_x, train_y).score


def _logistic_max_probability(train_x, train_y):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(train_x, train_y)
    return lambda x: 1.0 - model.predict_proba(x).max(axis=1)


def test_leave_one_class_out_finds_the_far_class_with_mahalanobis():
    X, y = _gaussians([(0, 0), (3, 0), (0, 3), (30, 30)])
    names = ["a", "b", "c", "far"]
    table = leave_one_class_out(X, y, _mahalanobis, class_names=names).set_index("class")
    assert list(table.index) == names
    assert table.loc["far", "auroc"] > 0.99 and table.loc["far", "flagged"] > 0.95
    assert table.loc["far", "n_unknown"] == 60 and table.loc["far", "n_known"] == 45
    assert table.loc["far", "n_train"] == 135
    assert table["auroc"].between(0, 1).all()


def test_leave_one_class_out_with_a_logistic_max_probability():
    # Three classes round a fourth: left out, the middle one sits where no class is sure.
    angles = np.deg2rad([90, 210, 330])
    X, y = _gaussians([(6 * np.cos(a), 6 * np.sin(a)) for a in angles] + [(0, 0)])
    table = leave_one_class_out(X, y, _logistic_max_probability)
    assert table.loc[3, "auroc"] > 0.95
    assert list(table["class"]) == ["0", "1", "2", "3"]


def test_leave_one_class_out_fits_only_other_classes_training_rows():
    X, y = _gaussians([(0, 0), (3, 0), (0, 3)], n=10)
    is_train = np.tile(np.r_[np.ones(7, bool), np.zeros(3, bool)], 3)
    seen = []

    def factory(train_x, train_y):
        seen.append((len(train_x), sorted(set(train_y.tolist()))))
        return lambda x: np.linalg.norm(x, axis=1)

    table = leave_one_class_out(X, y, factory, is_train=is_train)
    assert seen == [(14, [0, 1])] * 3  # two classes' 7 training rows, renumbered 0..1
    assert list(table["n_known"]) == [6, 6, 6] and list(table["n_unknown"]) == [10, 10, 10]
    with pytest.raises(ValueError, match="3 classes"):
        leave_one_class_out(X[y < 2], y[y < 2], factory)


def test_level_invariance_tells_a_level_free_score_from_a_level_bound_one():
    sr = 22050
    t = np.arange(sr) / sr
    y = 0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t)

    def rms_db(x, sample_rate):
        return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2))

    def crest(x, sample_rate):  # peak over RMS: no level in it
        x = np.asarray(x, np.float64)
        return np.max(np.abs(x)) / np.sqrt(np.mean(x ** 2))

    bound = level_invariance(rms_db, y, sr)
    free = level_invariance(crest, y, sr)
    assert list(bound["level_db"]) == [0.0, -20.0, -40.0]
    np.testing.assert_allclose(bound["change"], [0, -20, -40], atol=1e-3)
    np.testing.assert_allclose(free["change"], 0, atol=1e-4)
    np.testing.assert_allclose(bound["peak_dbfs"] - bound["peak_dbfs"][0], [0, -20, -40],
                               atol=1e-3)
    with pytest.raises(ValueError, match="non-silent"):
        level_invariance(crest, np.zeros(100), sr)
