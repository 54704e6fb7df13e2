"""Transfer heads on small random embeddings: no musicnn, no audio (helpers/transfer.py)."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from helpers.pretrained import ClipEmbeddings, EmbeddingConfig
from helpers.protocol import summarise
from helpers.splits import SCORED_SPLITS, library_directions, library_folds
from helpers.transfer import (
    TransferHead,
    TransferRecipe,
    block_columns,
    blocks_of,
    cross_library_neighbours,
    embedding_inputs,
    evaluate_transfer,
    evaluate_transfer_per_fold,
    fit_head,
    load_transfer_choice,
    save_transfer_choice,
)

# Two 50-wide blocks (the tag means of both networks): a 100-column embedding.
CONFIG = EmbeddingConfig(models=("MTT_musicnn", "MSD_musicnn"), pooling=(("taggram", "mean"),))
CLASSES = ["Cello", "Flute", "Oboe"]
LOGISTIC = TransferHead("logistic", C=1.0)
MLP = TransferHead("mlp", hidden=(16,), alpha=1e-3, max_iter=200, patience=200)  # 1 step per epoch


def clip_table(per_split: int = 8, libraries: tuple[str, ...] = ("A", "B")) -> pd.DataFrame:
    """Clips of three classes in ``libraries``, ``per_split`` per class, library and split."""
    rows = [{"fname": f"{lib}{split[:2]}{label[:2]}{i:02d}", "path": f"/nowhere/{lib}{i}.wav",
             "label": label, "split": split, "library": lib}
            for lib in libraries for split in ("train", "test") for label in CLASSES
            for i in range(per_split)]
    return pd.DataFrame(rows)


def embeddings_for(clips: pd.DataFrame, separation: float = 4.0, seed: int = 0,
                   skip: int = 0, shuffle: bool = True) -> ClipEmbeddings:
    """Gaussian embeddings whose mean depends on the class (``separation`` apart) and, less,
    on the library. The first ``skip`` clips are 'unreadable'; rows come in shuffled order."""
    rng = np.random.default_rng(seed)
    class_means = rng.normal(size=(len(CLASSES), CONFIG.dim)) * separation / np.sqrt(CONFIG.dim)
    library_shift = {"A": 0.0, "B": 0.5, "C": 0.25}
    X = np.stack([class_means[CLASSES.index(r.label)] + library_shift[r.library]
                  + rng.normal(size=CONFIG.dim) * 0.5 for r in clips.itertuples()])
    order = rng.permutation(len(clips)) if shuffle else np.arange(len(clips))
    order = order[~np.isin(order, np.arange(skip))]
    return ClipEmbeddings(X=X[order].astype(np.float32), clips=clips.iloc[order].reset_index(drop=True),
                          skipped=pd.DataFrame({"fname": clips["fname"][:skip], "reason": "unreadable"}),
                          n_patches=np.ones(len(order), dtype=np.int64), config=CONFIG)


@pytest.fixture
def data():
    clips = clip_table()
    return clips, library_directions(clips), embeddings_for(clips)


def test_rows_follow_the_directions_clip_tables(data):
    clips, directions, emb = data
    features, labels, names = embedding_inputs(emb, directions)
    row_of = {f: i for i, f in enumerate(emb.clips["fname"])}
    for d in directions:
        assert set(features[d.name]) == {"train", *SCORED_SPLITS}
        for split, X in features[d.name].items():
            expected = d.clips.loc[d.clips["split"] == split]
            assert list(names[d.name][split]) == list(expected["fname"])  # table order
            np.testing.assert_array_equal(X, emb.X[[row_of[f] for f in expected["fname"]]])
            assert [CLASSES[i] for i in labels[d.name][split]] == list(expected["label"])
        # the held-out library's clips are exactly the cross-library splits
        held = set(clips.loc[clips["library"] == d.held_out, "fname"])
        assert held == set(names[d.name]["cross_val"]) | set(names[d.name]["cross_test"])


def test_blocks_select_their_columns(data):
    _, directions, emb = data
    mtt = blocks_of(CONFIG, models=["MTT_musicnn"])
    assert mtt == (("MTT_musicnn", "taggram", "mean"),)
    np.testing.assert_array_equal(block_columns(CONFIG, mtt), np.arange(50))
    np.testing.assert_array_equal(block_columns(CONFIG), np.arange(100))
    features, _, names = embedding_inputs(emb, directions, blocks=blocks_of(CONFIG, models=["MSD_musicnn"]))
    d = directions[0].name
    rows = pd.Index(emb.clips["fname"]).get_indexer(names[d]["test"])
    np.testing.assert_array_equal(features[d]["test"], emb.block("MSD_musicnn", "taggram")[rows])
    with pytest.raises(KeyError, match="not in this embedding"):
        block_columns(CONFIG, [("MTT_musicnn", "penultimate", "mean")])
    with pytest.raises(KeyError, match="no block"):
        blocks_of(CONFIG, models=["MTT_vgg"])


def test_skipped_clips_are_left_out_and_unknown_clips_refused(data):
    clips, directions, _ = data
    emb = embeddings_for(clips, skip=3)
    skipped = set(clips["fname"][:3])
    features, labels, names = embedding_inputs(emb, directions)
    for d in directions:
        kept = np.concatenate(list(names[d.name].values()))
        assert not skipped & set(kept)
        assert len(kept) == len(clips) - 3
        assert all(len(features[d.name][s]) == len(labels[d.name][s]) == len(names[d.name][s])
                   for s in names[d.name])
    unseen = set(clips["fname"][3:8])  # five clips neither embedded nor skipped
    partial = emb.select(~emb.clips["fname"].isin(unseen).to_numpy())
    with pytest.raises(KeyError, match="clip\\(s\\) have no embedding") as error:
        embedding_inputs(partial, directions)
    assert any(f in str(error.value) for f in unseen)


def test_a_head_beats_chance_in_and_across_libraries():
    clips = clip_table(per_split=25)  # enough clips for the MLP's early-stopping split
    directions, emb = library_directions(clips), embeddings_for(clips)
    runs = evaluate_transfer([TransferRecipe("logistic", CONFIG, LOGISTIC),
                              TransferRecipe("mlp", CONFIG, MLP)], directions, [0], emb)
    summary = summarise(runs)
    assert list(summary.index) == ["logistic", "mlp"]
    assert len(runs.table) == 2 * len(directions) * len(SCORED_SPLITS)
    for split in ("test", "cross_val", "cross_test"):  # chance: 1/3
        assert (summary[f"{split}_accuracy"] > 0.75).all(), summary[f"{split}_accuracy"]
    assert runs.classes == CLASSES


def test_heads_are_deterministic_per_seed(data):
    _, directions, emb = data
    recipes = [TransferRecipe("mlp", CONFIG, MLP)]
    first = evaluate_transfer(recipes, directions, [0, 1], emb)
    again = evaluate_transfer(recipes, directions, [0, 1], emb)
    for key, probs in first.probs.items():
        np.testing.assert_array_equal(probs, again.probs[key])
    d = directions[0].name
    assert not np.array_equal(first.probs[("mlp", d, 0, "cross_val")],
                              first.probs[("mlp", d, 1, "cross_val")])  # the seed matters


def test_mlp_early_stopping_works_with_fewer_clips_than_classes_need():
    X = np.random.default_rng(0).normal(size=(30, 4))
    y = np.repeat(np.arange(10), 3)  # 10 % of 30 clips would be 3 clips for 10 classes
    head = TransferHead("mlp", hidden=(8,), max_iter=20).make(0)
    head.fit(X, y)
    assert head[-1].validation_fraction == 0.1  # restored after the fit
    assert head.predict_proba(X).shape == (30, 10)


def test_evaluate_transfer_refuses_embeddings_of_another_config(data):
    _, directions, emb = data
    other = TransferRecipe("tags of MTT", EmbeddingConfig(models=("MTT_musicnn",),
                                                          pooling=(("taggram", "mean"),)), LOGISTIC)
    with pytest.raises(ValueError, match="these embeddings were made with"):
        evaluate_transfer([other], directions, [0], emb)
    with pytest.raises(KeyError, match="no embeddings for recipe"):
        evaluate_transfer([other], directions, [0], {CONFIG: emb})


def test_fit_head_trains_on_the_training_clips_only(data):
    clips, _, emb = data
    recipe = TransferRecipe("MTT", CONFIG, LOGISTIC, blocks=blocks_of(CONFIG, models=["MTT_musicnn"]))
    model = fit_head(recipe, emb, clips, seed=0)
    assert list(model.classes_) == CLASSES
    assert model[-2].n_samples_seen_ == (clips["split"] == "train").sum()  # the standardiser
    assert model[0].n_features_in_ == 50  # the MTT blocks' columns, before the varying ones are kept
    test = emb.select((emb.clips["split"] == "test").to_numpy())
    accuracy = (model.predict(recipe.features(test)) == test.clips["label"]).mean()
    assert accuracy > 0.9
    restored = pickle.loads(pickle.dumps(fit_head(TransferRecipe("mlp", CONFIG, MLP), emb, clips)))
    assert restored.predict_proba(emb.X[:2]).shape == (2, 3)
    with pytest.raises(ValueError, match="no training clip"):
        fit_head(recipe, emb, clips.assign(split="test"))


def test_recipe_round_trips_through_json_and_validates():
    recipe = TransferRecipe("both", CONFIG, MLP, blocks=blocks_of(CONFIG))
    again = TransferRecipe.from_dict(json.loads(json.dumps(recipe.to_dict())))
    assert again == recipe
    assert TransferRecipe.from_dict(TransferRecipe("all", CONFIG, LOGISTIC).to_dict()).blocks is None
    assert "100 embedding columns" in recipe.describe() and "MLP" in recipe.describe()
    with pytest.raises(KeyError):
        TransferRecipe("bad", CONFIG, LOGISTIC, blocks=(("MTT_musicnn", "max_pool", "max"),))
    for bad in (dict(kind="svm"), dict(C=0), dict(alpha=-1), dict(kind="mlp", hidden=()),
                dict(validation_fraction=1.0)):
        with pytest.raises(ValueError):
            TransferHead(**bad)


def test_make_returns_an_unfitted_selecting_standardising_pipeline():
    for head in (LOGISTIC, MLP):
        pipe = head.make(3)
        assert [name for name, _ in pipe.steps[:2]] == ["variancethreshold", "standardscaler"]
        assert hasattr(pipe, "predict_proba")
        assert not hasattr(pipe[-1], "classes_")
        assert pipe[-1].random_state == 3


def test_cross_library_neighbours_finds_a_class_across_libraries():
    clips = clip_table()
    emb = embeddings_for(clips, shuffle=False)
    labels, libraries = clips["label"].to_numpy(), clips["library"].to_numpy()
    assert cross_library_neighbours(emb.X, labels, libraries) == 1.0
    noise = np.random.default_rng(1).normal(size=emb.X.shape)
    assert cross_library_neighbours(noise, labels, libraries) < 0.6  # chance: 1/3
    # only the other library counts: a clip's duplicate in its own library is no neighbour
    X = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.2]])
    assert cross_library_neighbours(X, ["a", "b", "a", "b"], ["A", "A", "B", "B"]) == 0.5
    with pytest.raises(ValueError, match="two libraries"):
        cross_library_neighbours(emb.X, labels, ["A"] * len(labels))
    # columns that only carry rounding noise (a unit the clips never activate) change nothing
    rounding = np.random.default_rng(2).normal(scale=1e-7, size=(len(labels), 200))
    assert cross_library_neighbours(np.hstack([emb.X, rounding]), labels, libraries) == 1.0


def test_logistic_head_does_not_depend_on_the_seed(data):
    _, directions, emb = data
    runs = evaluate_transfer([TransferRecipe("logistic", CONFIG, LOGISTIC)], directions, [0, 5], emb)
    for d in directions:
        np.testing.assert_array_equal(runs.probs[("logistic", d.name, 0, "cross_test")],
                                      runs.probs[("logistic", d.name, 5, "cross_test")])


@pytest.mark.parametrize("head", [TransferHead("logistic", C=0.5), TransferHead("mlp", hidden=(16, 8), alpha=1.0, max_iter=50)],
                         ids=["logistic", "mlp"])
def test_the_head_as_arrays_gives_the_pipelines_probabilities(head):
    from helpers.transfer import head_arrays, head_probabilities

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y = np.array(["a", "b", "c"])[np.arange(60) % 3]
    pipeline = head.make(0).fit(X + (np.arange(60) % 3)[:, None], y)
    arrays = head_arrays(pipeline)
    np.testing.assert_allclose(head_probabilities(arrays, X), pipeline.predict_proba(X), atol=1e-10)
    assert list(arrays["classes"]) == ["a", "b", "c"]


def test_columns_that_barely_vary_are_left_out_so_rounding_cannot_move_a_prediction():
    """A column whose spread over the training clips is at most MIN_STD (a unit the clips never
    activate, here constant up to float rounding) is dropped: rounding noise of the size
    batching causes (~1e-6) then moves neither the probabilities nor the detector's inputs."""
    from helpers.transfer import MIN_STD, head_arrays, head_inputs, head_probabilities

    rng = np.random.default_rng(0)
    y = np.array(["a", "b", "c"])[np.arange(60) % 3]
    informative = rng.normal(size=(60, 4)) + (np.arange(60) % 3)[:, None]
    dead = 0.5 + rng.normal(scale=1e-9, size=(60, 3))  # constant up to rounding
    pipeline = LOGISTIC.make(0).fit(np.hstack([informative, dead]), y)
    arrays = head_arrays(pipeline)
    assert list(arrays["keep"]) == [True] * 4 + [False] * 3
    assert arrays["mean"].shape == arrays["scale"].shape == (4,) and arrays["scale"].min() > MIN_STD
    X = np.hstack([informative, dead])
    jittered = X + np.hstack([np.zeros((60, 4)), rng.normal(scale=1e-6, size=(60, 3))])
    np.testing.assert_array_equal(head_inputs(arrays, jittered), head_inputs(arrays, X))
    np.testing.assert_array_equal(head_probabilities(arrays, jittered), head_probabilities(arrays, X))
    old_bundle = {k: v for k, v in arrays.items() if k != "keep"}  # saved before `keep` existed
    assert head_inputs(old_bundle, X[:, :4]).shape == (60, 4)


def test_each_fold_is_fit_with_its_own_recipe_under_one_name():
    clips = clip_table(libraries=("A", "B", "C"))
    folds, emb = library_folds(clips), embeddings_for(clips)
    mtt = TransferRecipe("logistic on MTT", CONFIG, LOGISTIC, blocks=blocks_of(CONFIG, models=["MTT_musicnn"]))
    both = TransferRecipe("logistic on both", CONFIG, TransferHead("logistic", C=0.1))
    recipe_of = {f.name: (mtt if i == 0 else both) for i, f in enumerate(folds)}
    runs = evaluate_transfer_per_fold(recipe_of, folds, [0], emb, "chosen per fold")
    assert runs.models == ["chosen per fold"]
    assert sorted(runs.table["direction"].unique()) == sorted(f.name for f in folds)
    for fold in folds:  # each fold's probabilities are its own recipe's, fit in that fold alone
        recipe = recipe_of[fold.name]
        alone = evaluate_transfer([recipe], [fold], [0], emb)
        np.testing.assert_array_equal(runs.probs[("chosen per fold", fold.name, 0, "cross_test")],
                                      alone.probs[(recipe.name, fold.name, 0, "cross_test")])
    with pytest.raises(KeyError, match="no recipe for fold"):
        evaluate_transfer_per_fold({folds[0].name: mtt}, folds, [0], emb, "incomplete")


def test_a_nested_choice_round_trips_through_its_json_file(tmp_path):
    mtt = TransferRecipe("logistic on MTT", CONFIG, LOGISTIC, blocks=blocks_of(CONFIG, models=["MTT_musicnn"]))
    mlp = TransferRecipe("MLP on both", CONFIG, MLP)
    path = save_transfer_choice(tmp_path / "best_transfer.json", mtt, {"A (chosen on B)": mtt, "B (chosen on C)": mlp},
                                {"chosen_by": "inner validation, fold by fold"})
    data = json.loads(path.read_text())
    assert TransferRecipe.from_dict(data["recipe"]) == mtt  # what notebook 10 reads
    assert set(data["per_fold"]) == {"A (chosen on B)", "B (chosen on C)"} and data["chosen_by"]
    chosen, per_fold = load_transfer_choice(path)
    assert chosen == mtt and per_fold == {"A (chosen on B)": mtt, "B (chosen on C)": mlp}
    old = tmp_path / "old.json"  # written before the nested protocol: no per-fold choices
    old.write_text(json.dumps({"recipe": mlp.to_dict()}))
    assert load_transfer_choice(old) == (mlp, {})
    with pytest.raises(ValueError, match="may not hold"):
        save_transfer_choice(tmp_path / "x.json", mtt, {}, {"per_fold": {}})
    with pytest.raises(FileNotFoundError, match="notebook 09 writes it"):
        load_transfer_choice(tmp_path / "missing.json")


def test_a_neighbour_in_a_library_that_shares_the_clips_recording_does_not_count():
    # clip 0 (class a, library A) plays a recording that library B's clip 1 (class b) also
    # holds, so each is the other's nearest clip elsewhere; clip 2 (class a, library C) is next
    X = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.01], [0.9, 0.3, 0.0]])
    labels, libraries = ["a", "b", "a"], ["A", "B", "C"]
    # without the shares: 0 -> 1 (wrong), 1 -> 0 (wrong), 2 -> 0 (right)
    assert cross_library_neighbours(X, labels, libraries) == pytest.approx(1 / 3)
    # with them: 0 -> 2 (right), 1 -> 2 (wrong: library A is out of its reach), 2 -> 0 (right)
    shares = ["B", "A", ""]
    assert cross_library_neighbours(X, labels, libraries, shares=shares) == pytest.approx(2 / 3)
    as_sets = cross_library_neighbours(X, labels, libraries, shares=[{"B"}, {"A"}, set()])
    assert as_sets == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one entry per clip"):
        cross_library_neighbours(X, labels, libraries, shares=shares[:2])


def test_a_narrowed_recipe_reads_the_same_features_from_only_the_networks_it_needs():
    from helpers.pretrained import AISFX, DEFAULT_POOLING

    wide = EmbeddingConfig(models=("MTT_musicnn", "MSD_musicnn", AISFX),
                           pooling=DEFAULT_POOLING + (("embedding", "mean"), ("embedding", "max")))
    X = np.arange(3 * wide.dim, dtype=np.float32).reshape(3, wide.dim)
    for models in (["MTT_musicnn"], ["MTT_musicnn", "MSD_musicnn"], [AISFX]):
        recipe = TransferRecipe("r", wide, TransferHead(C=1.0), blocks_of(wide, models=models))
        narrow = recipe.narrowed()
        assert narrow.embedding.models == tuple(models)
        assert not narrow.embedding.uses_aisfx or models == [AISFX]
        # the narrow embedding's columns, read by the narrow recipe, are the wide recipe's features
        narrow_X = np.concatenate([X[:, block_columns(wide, [b])] for b in blocks_of(narrow.embedding)], axis=1)
        np.testing.assert_array_equal(narrow_X[:, narrow.columns()], X[:, recipe.columns()])
    whole = TransferRecipe("all", wide, TransferHead(C=1.0))
    assert whole.narrowed() == whole
