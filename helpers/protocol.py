"""The evaluation protocol: every model scored in-library and cross-library, over folds and seeds.

A model is trained in each fold of :func:`helpers.splits.library_folds` (nested leave one
library out: fold L tests on library L and chooses on another library V) with every seed, and
scored on four splits:

================  ==========================================  ==================================
split             clips                                       used for
================  ==========================================  ==================================
``val``           the training libraries' held-out clips      early stopping (checkpoint)
``test``          the training libraries' test clips          **in-library** test score
``cross_val``     every clip of the inner validation library  the fold's choices (inner loop)
``cross_test``    every clip of the held-out library L        **cross-library** test score
================  ==========================================  ==================================

Both test columns come from the same trained networks, so their gap is what a change of sample
library costs. A headline number is pooled over the folds' clips (every clip of every library is
``cross_test`` once per seed) and averaged over seeds; its spread (± one standard deviation) is
over the independent units, the (fold, seed) runs. Choices read ``cross_val`` only, and fold by
fold (:func:`choose_per_fold`): the library a fold tests on chooses nothing in it. A later
chapter that builds on a choice takes each fold's own (:func:`fold_choices`, :func:`chosen_in`);
a model trained on every library takes the choice most folds made (:func:`majority`).

:class:`Runs` keeps one row per (model, direction, seed, split) and every clip's
probabilities, so that two models can be compared clip by clip (:mod:`helpers.stats`); a
"direction" is a fold (the name stays from the two-library protocol of
:func:`helpers.splits.library_directions`).
Used in: notebooks 03-10 (:func:`chapter_data` loads each one's clips and folds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from helpers.data import dataset_root, load_clips
from helpers.features import FeatureConfig
from helpers.splits import SCORED_SPLITS, Direction, library_folds

SPLIT_LABELS: dict[str, str] = {
    "val": "in-library validation", "test": "in-library test",
    "cross_val": "inner validation", "cross_test": "cross-library test",
}
METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "map_at_3")
RUN_COLUMNS: tuple[str, ...] = ("best_epoch", "epochs_run", "max_epochs", "train_seconds",
                                "params", "cached")


@dataclass(frozen=True)
class CNNRecipe:
    """Everything that defines a trained CNN except the data and the seed.

    ``versions`` (optional) builds extra renderings of the training windows that every epoch
    samples from (waveform augmentation, static CutMix copies): an object with
    ``build(prepared, seed, progress=True) -> helpers.augment.Versions`` and a ``name``.
    """

    name: str
    features: FeatureConfig
    cnn: Any
    train: Any
    augment: Any = None
    versions: Any = None


def _tuples(value):
    """JSON lists back to tuples, so frozen configurations compare equal after a round trip."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def save_recipe(recipe: CNNRecipe, path, extra: dict | None = None):
    """Write ``recipe`` (features, network, training settings, augmentation, versions) as JSON,
    atomically, so a later chapter rebuilds exactly what an earlier one chose
    (:func:`load_recipe`). ``extra`` (how it was chosen, its scores) is stored beside it."""
    from dataclasses import asdict

    from helpers.files import write_json

    versions = None
    if recipe.versions is not None:
        versions = {"kind": type(recipe.versions).__name__, **asdict(recipe.versions)}
    return write_json(path, {
        "name": recipe.name, "features": asdict(recipe.features), "cnn": asdict(recipe.cnn),
        "train": asdict(recipe.train), "augment": None if recipe.augment is None else asdict(recipe.augment),
        "versions": versions, "extra": extra or {}})


def load_recipe(path) -> CNNRecipe:
    """The :class:`CNNRecipe` written by :func:`save_recipe`; a clear error names the file."""
    import json
    from pathlib import Path

    from helpers.augment import AugmentConfig, StaticCutMix
    from helpers.augment_audio import WaveformAugment
    from helpers.models import CNNConfig
    from helpers.training import TrainConfig

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no saved recipe (the chapter that chooses it writes it)") from None
    kinds = {"WaveformAugment": WaveformAugment, "StaticCutMix": StaticCutMix}

    def build(kind, fields):
        return kind(**{k: _tuples(v) for k, v in fields.items()})

    versions = data.get("versions")
    if versions is not None:
        kind = versions.pop("kind")
        if kind not in kinds:
            raise ValueError(f"{path}: unknown versions kind {kind!r}; known: {sorted(kinds)}")
        versions = build(kinds[kind], versions)
    return CNNRecipe(data["name"], build(FeatureConfig, data["features"]), build(CNNConfig, data["cnn"]),
                     build(TrainConfig, data["train"]),
                     None if data["augment"] is None else build(AugmentConfig, data["augment"]), versions)


def save_fold_recipes(path, chosen: CNNRecipe, per_fold: Mapping[str, CNNRecipe],
                      extra: dict | None = None):
    """Write a nested choice of recipe: ``chosen`` (the majority's, for a model trained on every
    library) as :func:`save_recipe` does, plus each fold's own choice under
    ``extra["per_fold"]`` (fold name -> recipe), so that a later chapter builds fold L on what
    fold L chose (:func:`load_fold_recipes`)."""
    import json
    import tempfile
    from pathlib import Path

    per_fold_json = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fold, recipe in per_fold.items():
            one = Path(tmp) / "one.json"
            save_recipe(recipe, one)
            per_fold_json[str(fold)] = json.loads(one.read_text())
    return save_recipe(chosen, path, {**(extra or {}), "per_fold": per_fold_json})


def load_fold_recipes(path) -> tuple[CNNRecipe, dict[str, CNNRecipe]]:
    """``(chosen, {fold name: recipe})`` written by :func:`save_fold_recipes` (a file written by
    :func:`save_recipe` alone gives an empty per-fold dict: every fold then uses ``chosen``)."""
    import json
    import tempfile
    from pathlib import Path

    chosen = load_recipe(path)
    per_fold_json = json.loads(Path(path).read_text()).get("extra", {}).get("per_fold", {})
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fold, data in per_fold_json.items():
            one = Path(tmp) / "one.json"
            one.write_text(json.dumps(data))
            out[fold] = load_recipe(one)
    return chosen, out


@dataclass
class Runs:
    """Scores of trained models: ``table`` has one row per (model, direction, seed, split).

    ``probs[(model, direction, seed, split)]`` holds the clip probabilities ``(n_clips,
    n_classes)``, ``clips[(model, direction, split)]`` the clip names in the same order and
    ``labels[(model, direction, split)]`` their true class indices; ``classes`` names them.
    ``histories[(model, direction, seed)]`` keeps a CNN's loss and accuracy per epoch and
    ``weights[(model, direction, seed)]`` its trained weights (:meth:`network` rebuilds it from
    ``networks[model]``, or ``networks[(model, direction)]`` when folds chose different networks).
    """

    table: pd.DataFrame
    probs: dict = field(default_factory=dict)
    clips: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    histories: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    networks: dict = field(default_factory=dict)

    def network(self, model: str, direction: str, seed: int):
        """The trained ``tf_keras`` network of one CNN run (rebuilt from its weights)."""
        from helpers.models import build_cnn

        cnn, input_shape = self.networks.get((model, direction)) or self.networks[model]
        net = build_cnn(input_shape, len(self.classes), cnn)
        net.set_weights(self.weights[(model, direction, seed)])
        return net

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.table["model"]))

    def __add__(self, other: Runs) -> Runs:
        if self.classes and other.classes and list(self.classes) != list(other.classes):
            raise ValueError("cannot combine runs over different class lists")
        return Runs(pd.concat([self.table, other.table], ignore_index=True),
                    {**self.probs, **other.probs}, {**self.clips, **other.clips},
                    {**self.labels, **other.labels}, list(self.classes or other.classes),
                    {**self.histories, **other.histories}, {**self.weights, **other.weights},
                    {**self.networks, **other.networks})

    def select(self, models: Iterable[str]) -> Runs:
        """The runs of ``models`` only."""
        keep = set(models)
        return Runs(self.table[self.table["model"].isin(keep)].reset_index(drop=True),
                    *({k: v for k, v in d.items() if k[0] in keep}
                      for d in (self.probs, self.clips, self.labels)), self.classes,
                    *({k: v for k, v in d.items() if k[0] in keep}
                      for d in (self.histories, self.weights)),
                    {k: v for k, v in self.networks.items()
                     if (k[0] if isinstance(k, tuple) else k) in keep})

    def rename(self, old: str, new: str) -> Runs:
        """The same runs with model ``old`` called ``new`` (e.g. to reuse a chapter's runs)."""
        def key(k):
            return (new, *k[1:]) if k[0] == old else k

        table = self.table.assign(model=self.table["model"].replace({old: new}))
        return Runs(table, *({key(k): v for k, v in d.items()}
                             for d in (self.probs, self.clips, self.labels)), self.classes,
                    *({key(k): v for k, v in d.items()} for d in (self.histories, self.weights)),
                    {_renamed(k, old, new): v for k, v in self.networks.items()})


def _renamed(key, old: str, new: str):
    """A ``networks`` key (model, or (model, direction)) with model ``old`` called ``new``."""
    if isinstance(key, tuple):
        return (new, *key[1:]) if key[0] == old else key
    return new if key == old else key


class PreparedCache:
    """Prepared windows per (direction, feature configuration), made once per notebook.

    Features are extracted (or loaded from the cache) once for all clips; each direction only
    relabels the splits and fits its own standardiser on its training windows.
    """

    def __init__(self, directions: Sequence, progress: bool = False):
        self.directions = list(directions)
        self.progress = progress
        self._data: dict = {}

    def get(self, direction, features: FeatureConfig):
        from helpers.experiment import prepare

        key = (direction.name, features)
        if key not in self._data:
            self._data[key] = prepare(direction.clips, features, progress=self.progress)
        return self._data[key]


@dataclass(frozen=True, eq=False)
class ChapterData:
    """What a chapter works on: its ``clips`` (one row per clip, official split and library),
    the library ``folds`` (:class:`helpers.splits.Direction`) and ``data``, their prepared
    windows made on demand (:class:`PreparedCache`)."""

    clips: pd.DataFrame
    folds: list[Direction]
    data: PreparedCache


def chapter_data(dataset: str, subset, verified_only: bool = False,
                 max_clips_per_class: int | None = None, split_seed: int = 0,
                 val_fraction: float = 0.2, max_folds: int | None = None) -> ChapterData:
    """The clips of ``dataset``/``subset`` (:func:`helpers.data.load_clips`, capped with
    ``split_seed``), their nested library folds (:func:`helpers.splits.library_folds` with
    ``val_fraction`` and ``split_seed``; the first ``max_folds``, None: all) and a
    :class:`PreparedCache` of those folds; nothing is extracted yet.
    Used in: notebooks 03-10 (their data cell).
    """
    clips = load_clips(dataset_root(dataset), subset=subset, verified_only=verified_only,
                       max_clips_per_class=max_clips_per_class, seed=split_seed)
    folds = library_folds(clips, val_fraction=val_fraction, seed=split_seed)[:max_folds]
    return ChapterData(clips=clips, folds=folds, data=PreparedCache(folds))


def _rows(model: str, direction: str, seed: int, labels: Mapping[str, np.ndarray],
          probs: Mapping[str, np.ndarray], run: Mapping[str, Any]) -> list[dict]:
    from helpers.evaluation import clip_metrics

    rows = []
    for split, p in probs.items():
        metrics = clip_metrics(labels[split], p)
        rows.append({"model": model, "direction": direction, "seed": seed, "split": split,
                     **{m: metrics[m] for m in (*METRICS, "n_clips")}, **run})
    return rows


def evaluate_cnns(recipes: Sequence[CNNRecipe], directions: Sequence, seeds: Sequence[int],
                  data: PreparedCache | None = None, executor=None, progress: bool = True,
                  splits: Sequence[str] = SCORED_SPLITS) -> Runs:
    """Train every recipe with every seed in every direction and score ``splits``.

    All trainings are submitted together (:func:`helpers.experiment.train_many`), so they run
    side by side on the executor; cached runs are loaded. ``data`` shares prepared windows
    between calls of one notebook.
    """
    from helpers.experiment import TrainJob, train_many

    data = data or PreparedCache(directions)
    plan, jobs = [], []
    for recipe in recipes:
        for direction in directions:
            prepared = data.get(direction, recipe.features)
            for seed in seeds:
                train = replace(recipe.train, seed=int(seed))
                variants = recipe.versions.build(prepared, int(seed)) if recipe.versions else None
                jobs.append(TrainJob(prepared, recipe.cnn, train, recipe.augment,
                                     tuple(s for s in splits if s in prepared.splits), variants))
                plan.append((recipe, direction, prepared, int(seed)))
    # the label of the progress bar: the models by name while that stays short
    names = (", ".join(r.name for r in recipes) if len(recipes) <= 4 else
             f"{len(recipes)} models x {len(seeds)} seed(s) x {len(directions)} fold(s)")
    outcomes = train_many(jobs, executor=executor, progress=progress,
                          desc=f"{len(jobs)} trainings ({names})")
    runs = Runs(pd.DataFrame(), classes=list(plan[0][2].classes) if plan else [])
    rows = []
    for (recipe, direction, prepared, seed), outcome in zip(plan, outcomes):
        result = outcome.result
        run = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
               "max_epochs": recipe.train.epochs, "train_seconds": result.seconds,
               "params": outcome.params, "cached": result.cached}
        labels = {s: prepared.clip_y(s) for s in outcome.probs}
        rows += _rows(recipe.name, direction.name, seed, labels, outcome.probs, run)
        runs.histories[(recipe.name, direction.name, seed)] = result.history
        runs.weights[(recipe.name, direction.name, seed)] = outcome.weights
        runs.networks[recipe.name] = (recipe.cnn, prepared.input_shape)
        for s, p in outcome.probs.items():
            runs.probs[(recipe.name, direction.name, seed, s)] = p
            runs.clips[(recipe.name, direction.name, s)] = prepared.splits[s].clips["fname"].to_numpy()
            runs.labels[(recipe.name, direction.name, s)] = labels[s]
    runs.table = pd.DataFrame(rows)
    return runs


def evaluate_clip_model(name: str, make_model: Callable[[int], Any],
                        features: Mapping[str, Mapping[str, np.ndarray]],
                        labels: Mapping[str, Mapping[str, np.ndarray]],
                        clips: Mapping[str, Mapping[str, np.ndarray]], classes: Sequence[str],
                        seeds: Sequence[int], splits: Sequence[str] = SCORED_SPLITS) -> Runs:
    """A clip-level model (scikit-learn style: ``fit``, ``predict_proba``) in every direction.

    ``features[direction][split]`` is ``(n_clips, n_features)``, ``labels`` and ``clips`` the
    matching class indices and clip names; ``make_model(seed)`` returns an unfitted model. It
    is fit on ``train`` (its ``val`` is only scored: these models need no early stopping).
    """
    import time

    from helpers.evaluation import full_probabilities
    from helpers.parallel import one_blas_thread

    runs = Runs(pd.DataFrame(), classes=list(classes))
    rows = []
    for direction, X in features.items():
        for seed in seeds:
            model = make_model(int(seed))
            start = time.perf_counter()
            with one_blas_thread():  # small matrices: one thread is faster, and the same everywhere
                model.fit(X["train"], labels[direction]["train"])
                seconds = time.perf_counter() - start
                probs = {s: full_probabilities(model, X[s], len(classes)) for s in splits if s in X}
            run = {"best_epoch": np.nan, "epochs_run": np.nan, "max_epochs": np.nan,
                   "train_seconds": seconds, "params": np.nan, "cached": False}
            rows += _rows(name, direction, int(seed), labels[direction], probs, run)
            for s, p in probs.items():
                runs.probs[(name, direction, int(seed), s)] = p.astype(np.float32)
                runs.clips[(name, direction, s)] = np.asarray(clips[direction][s])
                runs.labels[(name, direction, s)] = np.asarray(labels[direction][s])
    runs.table = pd.DataFrame(rows)
    return runs


def clip_inputs(prepared_by_direction: Mapping[str, Any], to_features: Callable,
                splits: Sequence[str] = ("train", *SCORED_SPLITS)):
    """``(features, labels, clips)`` dicts for :func:`evaluate_clip_model` from prepared windows.

    ``to_features(feature_set)`` turns one split's windows into ``(n_clips, d)`` in clip order
    (e.g. :func:`helpers.features.clip_summary`).
    """
    features, labels, clips = {}, {}, {}
    for direction, prepared in prepared_by_direction.items():
        names = [s for s in splits if s in prepared.splits]
        features[direction] = {s: to_features(prepared.splits[s]) for s in names}
        labels[direction] = {s: prepared.clip_y(s) for s in names}
        clips[direction] = {s: prepared.splits[s].clips["fname"].to_numpy() for s in names}
    return features, labels, clips


def combine(runs: Runs, members: Sequence[str], name: str,
            weights: Sequence[float] | None = None) -> Runs:
    """A new model ``name`` whose clip probabilities are the weighted mean of ``members``'.

    Averaging the probabilities of models that err differently (a CNN trained from scratch and
    a head on pretrained embeddings) is the simplest ensemble. Every (direction, seed, split)
    that all members have is combined, clip by clip (aligned by clip name); a member run with a
    single seed is used for every seed of the others.
    """
    from helpers.evaluation import clip_metrics

    weights = np.full(len(members), 1 / len(members)) if weights is None else np.asarray(weights, float)
    weights = weights / weights.sum()
    table = runs.table[runs.table["model"].isin(members)]
    out = Runs(pd.DataFrame(), classes=list(runs.classes))
    rows = []
    seeds = sorted(table["seed"].unique())
    for (direction, split), part in table.groupby(["direction", "split"], sort=False):
        if part["model"].nunique() < len(members):
            continue
        names = runs.clips[(members[0], direction, split)]
        labels = runs.labels[(members[0], direction, split)]
        for seed in seeds:
            total = np.zeros((len(names), len(runs.classes)))
            for member, w in zip(members, weights):
                member_seeds = sorted(part.loc[part["model"] == member, "seed"])
                s = seed if seed in member_seeds else member_seeds[0]
                where = {c: i for i, c in enumerate(runs.clips[(member, direction, split)])}
                order = [where[c] for c in names]
                total += w * runs.probs[(member, direction, s, split)][order]
            metrics = clip_metrics(labels, total)
            rows.append({"model": name, "direction": direction, "seed": seed, "split": split,
                         **{m: metrics[m] for m in (*METRICS, "n_clips")}, "best_epoch": np.nan,
                         "epochs_run": np.nan, "max_epochs": np.nan, "train_seconds": np.nan,
                         "params": np.nan, "cached": True})
            out.probs[(name, direction, seed, split)] = total.astype(np.float32)
        out.clips[(name, direction, split)] = names
        out.labels[(name, direction, split)] = labels
    out.table = pd.DataFrame(rows)
    return out


def choose_per_fold(runs: Runs, candidates: Sequence[str], name: str,
                    split: str = "cross_val", metric: str = "accuracy") -> tuple[Runs, pd.DataFrame]:
    """Nested choice: in each direction (fold) separately, the candidate with the best mean
    ``metric`` over seeds on ``split``, kept as a new model ``name``.

    With :func:`helpers.splits.library_folds`, ``cross_val`` is the fold's inner validation
    library, so fold L's choice never sees L: the new model's ``cross_test`` scores are honest
    cross-library scores of the *procedure* "choose on validation, then test", whose choice may
    differ from fold to fold. Ties go to the earlier candidate. Returns the new model's runs
    and a table of the choice per fold (``direction``, ``chosen``, one column per candidate).
    """
    table = runs.table[runs.table["model"].isin(candidates) & (runs.table["split"] == split)]
    missing = sorted(set(candidates) - set(table["model"]))
    if missing:
        raise KeyError(f"no {split!r} runs of {missing}")
    means = table.groupby(["direction", "model"])[metric].mean().unstack("model")
    means = means[list(candidates)]
    chosen = {d: str(row.idxmax()) for d, row in means.iterrows()}
    out = select_per_fold(runs, chosen, name)
    choices = means.round(4).assign(chosen=pd.Series(chosen)).reset_index()
    return out, choices[["direction", "chosen", *candidates]]


def select_per_fold(runs: Runs, chosen: Mapping[str, str], name: str) -> Runs:
    """One model ``name`` whose runs in fold ``d`` are those of model ``chosen[d]`` (scores,
    probabilities, clips, histories, weights, networks): the procedure "in each fold, use what
    that fold chose", whatever rule chose it (:func:`choose_per_fold`'s best on inner validation,
    a budget rule, ...). Its ``cross_test`` rows are the procedure's honest cross-library score
    when every choice was made without the fold's test library."""
    out = Runs(pd.DataFrame(), classes=list(runs.classes))
    parts = []
    for direction, model in chosen.items():
        part = runs.table[(runs.table["model"] == model) & (runs.table["direction"] == direction)]
        if part.empty:
            raise KeyError(f"no runs of {model!r} in fold {direction!r}")
        parts.append(part.assign(model=name))
        for store, target in ((runs.probs, out.probs), (runs.clips, out.clips), (runs.labels, out.labels),
                              (runs.histories, out.histories), (runs.weights, out.weights)):
            for key, value in store.items():
                if key[0] == model and key[1] == direction:
                    target[(name, *key[1:])] = value
        network = runs.networks.get((model, direction)) or runs.networks.get(model)
        if network is not None:
            out.networks[(name, direction)] = network
    out.table = pd.concat(parts, ignore_index=True)
    return out


def majority(choices: pd.DataFrame, candidates: Sequence[str] | None = None) -> str:
    """The candidate most folds of ``choices`` (:func:`choose_per_fold`'s table) chose; a tie
    goes to the earlier candidate. Applied to all libraries, the nested procedure's choice: what
    a model trained on every library (the shipped one) uses."""
    counts = choices["chosen"].value_counts()
    order = list(candidates) if candidates is not None else list(choices.columns[2:])
    best = counts.max()
    return next(c for c in order if counts.get(c, 0) == best)


def fold_choices(choices: pd.DataFrame, candidates: Sequence[str] | None = None) -> dict:
    """A JSON-ready record of a nested choice: ``{"per_fold": {direction: chosen}, "chosen":
    majority}``, for a later chapter that builds on it fold by fold (:func:`chosen_in`)."""
    return {"per_fold": {str(d): str(c) for d, c in zip(choices["direction"], choices["chosen"])},
            "chosen": majority(choices, candidates)}


def chosen_in(record: Mapping, direction) -> str:
    """What a :func:`fold_choices` record chose in ``direction`` (a fold or its name); a fold
    the record does not know (another protocol, another dataset) gets the majority choice."""
    name = getattr(direction, "name", direction)
    return record.get("per_fold", {}).get(name, record["chosen"])


def evaluate_per_fold(recipe_of: Mapping[str, CNNRecipe], directions: Sequence, seeds: Sequence[int],
                      name: str, data: PreparedCache | None = None, **kwargs) -> Runs:
    """One model ``name`` whose recipe differs from fold to fold: ``recipe_of[direction.name]``
    is trained in that direction only (e.g. each fold's own choice of hyperparameters). The
    folds that share a recipe train side by side in one :func:`evaluate_cnns` call (and its run
    cache: a recipe a chapter already trained in that fold is loaded, not trained again)."""
    data = data or PreparedCache(directions)
    groups: dict = {}
    for direction in directions:
        groups.setdefault(recipe_of[direction.name], []).append(direction)
    out = Runs(pd.DataFrame())
    for recipe, group in groups.items():
        part = evaluate_cnns([recipe], group, seeds, data=data, **kwargs).rename(recipe.name, name)
        cnn, input_shape = part.networks.pop(name)
        part.networks.update({(name, d.name): (cnn, input_shape) for d in group})
        out = out + part
    return out


def pooled(runs: Runs, model: str, split: str = "cross_test",
           metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """``model``'s scores on ``split`` pooled over all directions' clips, per seed.

    With nested leave-one-library-out folds, every clip of every library is tested once per
    seed, so pooling scores each clip once (a small library weighs by its clips, not as much
    as a large one, unlike the mean over directions of :func:`summarise`). One row per seed,
    columns ``metrics`` and ``n_clips``.
    """
    from helpers.evaluation import clip_metrics

    rows = runs.table[(runs.table["model"] == model) & (runs.table["split"] == split)]
    if rows.empty:
        raise KeyError(f"no runs of {model!r} on split {split!r}")
    directions = sorted(rows["direction"].unique())
    out = []
    for seed in sorted(rows["seed"].unique()):
        have = [d for d in directions if (model, d, seed, split) in runs.probs]
        labels = np.concatenate([runs.labels[(model, d, split)] for d in have])
        probs = np.concatenate([runs.probs[(model, d, seed, split)] for d in have])
        metrics_ = clip_metrics(labels, probs)
        out.append({"seed": int(seed), **{m: metrics_[m] for m in metrics},
                    "n_clips": len(labels), "directions": len(have)})
    return pd.DataFrame(out).set_index("seed")


def summarise(runs: Runs, metrics: Sequence[str] = METRICS,
              splits: Sequence[str] = SCORED_SPLITS) -> pd.DataFrame:
    """One row per model: each split's metric **pooled** over the directions' clips (every clip
    counts once per direction it is scored in; with nested leave-one-library-out folds every
    clip of every library is ``cross_test`` exactly once), averaged over seeds
    (``<split>_<metric>``), and its spread over the independent units, the (direction, seed)
    runs: the standard deviation of their own scores (``..._std``; NaN for a single run).

    Also ``seeds``, ``directions``, ``params``, mean ``train_seconds`` per training, and
    ``converged``: the share of trainings whose best epoch came before their last epoch, and
    ``stopped_early``: the share that early stopping ended before the epoch budget (a run can
    converge and still reach the budget, e.g. best epoch 27 of 30 with patience 4; both NaN
    for models without epochs).
    """
    table = runs.table
    out = []
    for model, rows in table.groupby("model", sort=False):
        row = {"model": model, "seeds": rows["seed"].nunique(),
               "directions": rows["direction"].nunique()}
        for split in splits:
            part = rows[rows["split"] == split]
            if part.empty:
                continue
            whole = _pooled_scores(runs, model, split, part, metrics)
            for m in metrics:
                row[f"{split}_{m}"] = whole[m].mean()
                row[f"{split}_{m}_std"] = part[m].std(ddof=1) if len(part) > 1 else np.nan
        one = rows.drop_duplicates(["direction", "seed"])
        row["params"] = one["params"].mean()
        row["train_seconds"] = one["train_seconds"].mean()
        epochs = one.dropna(subset=["best_epoch"])
        row["converged"] = ((epochs["best_epoch"] < epochs["epochs_run"]).mean()
                            if len(epochs) else np.nan)
        row["stopped_early"] = ((epochs["epochs_run"] < epochs["max_epochs"]).mean()
                                if len(epochs) else np.nan)
        row["best_epoch"] = epochs["best_epoch"].mean() if len(epochs) else np.nan
        out.append(row)
    return pd.DataFrame(out).set_index("model")


def _pooled_scores(runs: Runs, model: str, split: str, part: pd.DataFrame,
                   metrics: Sequence[str]) -> pd.DataFrame:
    """Per seed, ``metrics`` over the clips of every direction of ``part`` pooled (one row per
    seed); falls back to the clip-weighted mean of the rows when probabilities are missing."""
    from helpers.evaluation import clip_metrics

    out = {}
    for seed, rows in part.groupby("seed"):
        keys = [(model, d, seed, split) for d in rows["direction"]]
        if all(k in runs.probs for k in keys):
            labels = np.concatenate([runs.labels[(model, d, split)] for d in rows["direction"]])
            probs = np.concatenate([runs.probs[k] for k in keys])
            scores = clip_metrics(labels, probs)
            out[seed] = {m: scores[m] for m in metrics}
        else:
            weights = rows["n_clips"].to_numpy(float)
            out[seed] = {m: float(np.average(rows[m], weights=weights)) for m in metrics}
    return pd.DataFrame.from_dict(out, orient="index")


def convergence_text(summary: pd.DataFrame, rows: Sequence[str] | None = None) -> str:
    """One sentence on how the trainings of ``summary`` (or of its ``rows``) ended, from its
    ``converged`` and ``stopped_early`` columns (means over models: every model here has the
    same number of trainings)."""
    part = summary if rows is None else summary.loc[list(rows)]
    converged, early = part["converged"].mean(), part["stopped_early"].mean()
    if not np.isfinite(converged):
        return "These models have no training epochs."
    text = f"{converged:.0%} of the trainings had their best epoch before their last"
    if early >= 1:
        return text + ", and early stopping ended every one of them before the epoch budget."
    return text + (f"; early stopping ended {early:.0%} before the epoch budget, the other "
                   f"{1 - early:.0%} ran the whole budget.")


def headline(summary: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """The two columns every headline number gets: in-library and cross-library test
    (``mean ± std`` text), plus the inner validation (``cross_val``: where the folds choose),
    and the number of runs (folds x seeds) the ± is over, for display."""
    def text(row, split):
        mean, std = row.get(f"{split}_{metric}"), row.get(f"{split}_{metric}_std")
        if mean is None or not np.isfinite(mean):
            return "–"
        return f"{mean:.3f}" if std is None or not np.isfinite(std) else f"{mean:.3f} ± {std:.3f}"

    return pd.DataFrame({
        f"in-library test {metric}": [text(r, "test") for _, r in summary.iterrows()],
        f"cross-library test {metric}": [text(r, "cross_test") for _, r in summary.iterrows()],
        f"inner validation {metric}": [text(r, "cross_val") for _, r in summary.iterrows()],
        "runs (folds × seeds)": [f"{int(r['directions'])} × {int(r['seeds'])}" for _, r in summary.iterrows()],
    }, index=summary.index)


def clip_scores(runs: Runs, model: str, split: str, metric: str = "accuracy"):
    """Per-clip scores of ``model`` on ``split``: ``(seeds, clip names, matrix (n_seeds, n_units))``.

    A unit is a (direction, clip) pair, so both directions' clips count. ``metric`` is
    "accuracy" (1 when the top class is right) or "map_at_3" (1, 1/2, 1/3 or 0).
    """
    from helpers.evaluation import clip_correct, clip_precision_at_3

    score = {"accuracy": clip_correct, "map_at_3": clip_precision_at_3}[metric]
    rows = runs.table[(runs.table["model"] == model) & (runs.table["split"] == split)]
    if rows.empty:
        raise KeyError(f"no runs of {model!r} on split {split!r}")
    seeds = sorted(rows["seed"].unique())
    directions = sorted(rows["direction"].unique())
    units = np.concatenate([[f"{d}/{c}" for c in runs.clips[(model, d, split)]] for d in directions])
    matrix = np.stack([np.concatenate([score(runs.labels[(model, d, split)],
                                             runs.probs[(model, d, seed, split)])
                                       for d in directions]) for seed in seeds])
    return seeds, units, matrix


def _only_seeds(found: list, units, scores: np.ndarray, seeds, model: str):
    """:func:`clip_scores`' output restricted to ``seeds`` (None: all). A model with one run
    only (e.g. a deterministic classical model) is kept: :func:`paired` repeats it."""
    if seeds is None or len(found) == 1:
        return found, units, scores
    wanted = {int(s) for s in seeds}
    rows = [i for i, s in enumerate(found) if s in wanted]
    if not rows:
        raise ValueError(f"{model!r} has no runs with seed(s) {sorted(wanted)}; it has {found}")
    return [found[i] for i in rows], units, scores[rows]


def paired(runs: Runs, a: str, b: str, split: str = "cross_val", metric: str = "accuracy",
           seeds: Sequence[int] | None = None):
    """Aligned per-clip scores of two models: ``(A, B)``, each ``(n_seeds, n_units)``, over the
    seeds and (direction, clip) units both have (a deterministic model run with one seed is
    repeated for every seed of the other). ``seeds`` keeps only those seeds' runs (e.g. the
    seeds a search did not choose with)."""
    seeds_a, units_a, A = _only_seeds(*clip_scores(runs, a, split, metric), seeds, a)
    seeds_b, units_b, B = _only_seeds(*clip_scores(runs, b, split, metric), seeds, b)
    common = np.intersect1d(units_a, units_b)
    if len(common) == 0:
        raise ValueError(f"{a!r} and {b!r} share no clips on {split!r}")
    where_a = {u: i for i, u in enumerate(units_a)}
    where_b = {u: i for i, u in enumerate(units_b)}
    A = A[:, [where_a[u] for u in common]]
    B = B[:, [where_b[u] for u in common]]
    if len(seeds_a) == 1 and len(seeds_b) > 1:
        A = np.repeat(A, len(seeds_b), axis=0)
    elif len(seeds_b) == 1 and len(seeds_a) > 1:
        B = np.repeat(B, len(seeds_a), axis=0)
    else:
        both = sorted(set(seeds_a) & set(seeds_b))
        A = A[[seeds_a.index(s) for s in both]]
        B = B[[seeds_b.index(s) for s in both]]
    return A, B
