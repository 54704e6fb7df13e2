"""Transfer learning: small classifiers on top of a frozen pretrained network's clip embeddings.

The pretrained musicnn networks (:mod:`helpers.pretrained`) were trained to tag real music, not
to name our instruments; their intermediate layers, pooled over a clip, still describe timbre.
Transfer learning here keeps those networks **frozen** and trains only a small *head* on the
clip embeddings:

* :class:`TransferHead`: the classifier, a scikit-learn pipeline (drop the columns that barely
  vary, standardise, then logistic regression or a one-hidden-layer MLP), seeded;
* :class:`TransferRecipe`: everything that defines a transfer model except the data and the
  seed: the embedding (:class:`helpers.pretrained.EmbeddingConfig`), the head, and which
  blocks of the embedding the head reads (e.g. the MTT network's only);
* :func:`embedding_inputs` lays cached embeddings out per direction and split, exactly as
  :func:`helpers.protocol.evaluate_clip_model` takes them, and :func:`evaluate_transfer` runs
  recipes through the project's protocol (in-library and cross-library, over seeds);
* :func:`fit_head` trains one head on the training clips of any clip table (a model to ship);
* a nested choice of recipe (each fold chooses on its own inner validation library) is stored by
  :func:`save_transfer_choice` (the majority's recipe, and each fold's own) and read back by
  :func:`load_transfer_choice`; :func:`evaluate_transfer_per_fold` runs each fold's own recipe
  under one model name.

Heads are fit with one BLAS/OpenMP thread (:data:`HEAD_THREADS`): the problems are small (a few
hundred clips), so threads have little to share, and on a busy machine (other notebooks, other
users) several BLAS threads per process made fitting many times slower in our runs; a fixed
thread count also keeps the numbers identical on machines with different core counts.
Used in: notebooks/09_pretrained.ipynb (:class:`TransferHead`, :class:`TransferRecipe`,
:func:`block_columns`, :func:`blocks_of`, :func:`cross_library_neighbours`,
:func:`evaluate_transfer`, :func:`fit_head`, :func:`head_arrays`, :func:`save_transfer_choice`),
notebooks/10_shipping.ipynb (:class:`TransferRecipe`, :func:`evaluate_transfer`,
:func:`evaluate_transfer_per_fold`, :func:`load_transfer_choice`, :func:`fit_head`,
:func:`head_arrays`, :func:`head_inputs`, :func:`save_transfer_bundle`); helpers/predict.py (the
``"transfer"`` model kind).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.pretrained import ClipEmbeddings, EmbeddingConfig
from helpers.splits import SCORED_SPLITS

HEAD_KINDS: tuple[str, ...] = ("logistic", "mlp")
HEAD_THREADS = 1  # BLAS/OpenMP threads while a head is fit (see the module docstring)
# An embedding column whose spread over the training clips is at most this barely moves: a unit
# of the network that our clips (nearly) never activate. A few are exactly constant; the others
# move by far less than the columns the heads read, some only by float rounding, which changes
# with a patch's place in a batch (oneDNN).
# Standardising such a column would blow that rounding up to whole standard deviations, so the
# heads, the distance detector and the neighbour test leave these columns out.
MIN_STD = 1e-3

Block = tuple[str, str, str]  # (model, output, statistic), as in EmbeddingConfig.blocks()


@dataclass(frozen=True)
class TransferHead:
    """The classifier on top of the embeddings: ``VarianceThreshold`` (drops the columns whose
    standard deviation over the training clips is at most :data:`MIN_STD`), ``StandardScaler``,
    then ``kind``.

    * ``"logistic"``: multinomial logistic regression; ``C`` is the inverse strength of its L2
      penalty (smaller ``C``: simpler model). It is convex and fit by L-BFGS, so the seed
      changes nothing.
    * ``"mlp"``: one or more hidden ReLU layers of sizes ``hidden`` with L2 penalty ``alpha``,
      trained with Adam (scikit-learn's ``MLPClassifier``) and early stopping: at most
      ``max_iter`` epochs, ended after ``patience`` epochs without a better accuracy on a
      random ``validation_fraction`` of the training clips (drawn with the seed), whose best
      weights are kept.
    """

    kind: str = "logistic"
    C: float = 1.0
    hidden: tuple[int, ...] = (256,)
    alpha: float = 10.0
    max_iter: int = 300
    patience: int = 20
    validation_fraction: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.kind not in HEAD_KINDS:
            raise ValueError(f"TransferHead.kind must be one of {HEAD_KINDS}, not {self.kind!r}")
        if not self.C > 0:
            raise ValueError(f"TransferHead.C must be positive, not {self.C}")
        if self.alpha < 0:
            raise ValueError(f"TransferHead.alpha must be >= 0, not {self.alpha}")
        if self.kind == "mlp" and (not self.hidden or min(self.hidden) < 1):
            raise ValueError(f"TransferHead.hidden needs at least one layer of >= 1 unit, "
                             f"not {self.hidden}")
        if self.max_iter < 1 or self.patience < 1 or not 0 < self.validation_fraction < 1:
            raise ValueError(f"TransferHead: max_iter and patience must be >= 1 and "
                             f"validation_fraction in (0, 1), got {self.max_iter}, "
                             f"{self.patience}, {self.validation_fraction}")

    def make(self, seed: int = 0):
        """An unfitted scikit-learn pipeline (``fit``, ``predict_proba``), seeded by ``seed``."""
        from sklearn.feature_selection import VarianceThreshold
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from helpers.models import small_data_classes

        if self.kind == "logistic":
            classifier = LogisticRegression(C=self.C, max_iter=2000, random_state=int(seed))
        else:
            mlp = small_data_classes().mlp
            classifier = mlp(hidden_layer_sizes=self.hidden, alpha=self.alpha,
                             max_iter=self.max_iter, early_stopping=True,
                             validation_fraction=self.validation_fraction,
                             n_iter_no_change=self.patience, random_state=int(seed))
        return make_pipeline(VarianceThreshold(MIN_STD ** 2), StandardScaler(), classifier)

    def describe(self) -> str:
        """One sentence generated from the fields (for notebooks)."""
        if self.kind == "logistic":
            return f"logistic regression (L2, C = {self.C:g})"
        layers = " + ".join(str(h) for h in self.hidden)
        return (f"MLP with hidden layer(s) of {layers} ReLU units (L2 alpha = {self.alpha:g}, "
                f"early stopping after {self.patience} epochs without progress on "
                f"{self.validation_fraction:.0%} of the training clips)")


def blocks_of(config: EmbeddingConfig, models: Sequence[str] | None = None,
              outputs: Sequence[str] | None = None) -> tuple[Block, ...]:
    """The ``(model, output, statistic)`` blocks of ``config``, optionally only those of
    ``models`` and/or ``outputs`` (e.g. ``blocks_of(config, models=["MTT_musicnn"])``)."""
    found = tuple((m, o, s) for m, o, s, _ in config.blocks()
                  if (models is None or m in models) and (outputs is None or o in outputs))
    if not found:
        raise KeyError(f"no block of models {models} and outputs {outputs} in this embedding; "
                       f"it has {[b[:3] for b in config.blocks()]}")
    return found


def block_columns(config: EmbeddingConfig, blocks: Sequence[Block] | None = None) -> np.ndarray:
    """Column indices of ``blocks`` (all of the embedding when None) in ``config``'s layout."""
    where = {(m, o, s): cols for m, o, s, cols in config.blocks()}
    if blocks is None:
        return np.arange(config.dim)
    missing = [tuple(b) for b in blocks if tuple(b) not in where]
    if missing:
        raise KeyError(f"blocks {missing} are not in this embedding; it has {list(where)}")
    return np.concatenate([np.arange(where[tuple(b)].start, where[tuple(b)].stop) for b in blocks])


@dataclass(frozen=True)
class TransferRecipe:
    """A transfer model except its data and seed: an embedding, a head and the blocks it reads.

    ``blocks`` lists ``(model, output, statistic)`` entries of ``embedding.blocks()`` (see
    :func:`blocks_of`); None means the whole embedding.
    """

    name: str
    embedding: EmbeddingConfig
    head: TransferHead
    blocks: tuple[Block, ...] | None = None

    def __post_init__(self):
        if self.blocks is not None:
            blocks = tuple(tuple(str(v) for v in b) for b in self.blocks)
            object.__setattr__(self, "blocks", blocks)
        self.columns()  # validates the blocks

    def columns(self) -> np.ndarray:
        """Column indices of the embedding the head reads."""
        return block_columns(self.embedding, self.blocks)

    def narrowed(self) -> TransferRecipe:
        """The same recipe on an embedding of only the networks its blocks read: what a model
        to ship needs computed (the head reads the same features, in the same order)."""
        blocks = self.blocks or blocks_of(self.embedding)
        used = tuple(m for m in self.embedding.models if any(b[0] == m for b in blocks))
        pooling = tuple(p for p in self.embedding.pooling if any(tuple(b[1:]) == p for b in blocks))
        embedding = replace(self.embedding, models=used, pooling=pooling)
        return replace(self, embedding=embedding, blocks=None if self.blocks is None and
                       len(used) == len(self.embedding.models) and pooling == self.embedding.pooling else blocks)

    def features(self, embeddings: ClipEmbeddings) -> np.ndarray:
        """The head's input for every clip of ``embeddings``, ``(n_clips, n_features)``."""
        _check_config(self, embeddings)
        return embeddings.X[:, self.columns()]

    def describe(self) -> str:
        """What the recipe reads and fits, generated from its fields."""
        blocks = self.blocks or blocks_of(self.embedding)
        models = ", ".join(dict.fromkeys(m for m, _, _ in blocks))
        parts = ", ".join(f"{o} ({s})" for o, s in dict.fromkeys((o, s) for _, o, s in blocks))
        return (f"{self.head.describe()} on {len(self.columns()):,} embedding columns, less those "
                f"that barely vary over the training clips: {parts} of {models}, pooled over "
                "each clip's 3-s patches")

    def to_dict(self) -> dict:
        """Plain values (for JSON); :meth:`from_dict` rebuilds the recipe."""
        return {"name": self.name, "embedding": asdict(self.embedding), "head": asdict(self.head),
                "blocks": None if self.blocks is None else [list(b) for b in self.blocks]}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TransferRecipe:
        """The recipe :meth:`to_dict` (possibly through JSON) described."""
        blocks = values.get("blocks")
        return cls(name=values["name"], embedding=EmbeddingConfig(**values["embedding"]),
                   head=TransferHead(**values["head"]),
                   blocks=None if blocks is None else tuple(tuple(b) for b in blocks))


def _check_config(recipe: TransferRecipe, embeddings: ClipEmbeddings) -> None:
    if embeddings.config != recipe.embedding:
        raise ValueError(f"recipe {recipe.name!r} reads the embedding {recipe.embedding}, but "
                         f"these embeddings were made with {embeddings.config}")


def _rows(embeddings: ClipEmbeddings, fnames: Sequence[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``embeddings`` for ``fnames`` and a mask of the fnames that have one.

    A clip the embedding skipped (unreadable audio) is masked out; a clip it never saw is an
    error (the embeddings were made for another clip table).
    """
    row = pd.Series(np.arange(len(embeddings.clips)), index=embeddings.clips["fname"].astype(str))
    fnames = pd.Index(np.asarray(fnames).astype(str))
    present = fnames.isin(row.index)
    unknown = fnames[~present & ~fnames.isin(embeddings.skipped["fname"].astype(str))]
    if len(unknown):
        raise KeyError(f"{where}: {len(unknown)} clip(s) have no embedding, e.g. "
                       f"{list(unknown[:3])}; compute the embeddings for this clip table "
                       "(helpers.pretrained.clip_embeddings)")
    return row[fnames[present]].to_numpy(), np.asarray(present)


def _classes(directions: Sequence) -> list[str]:
    from helpers.data import classes_of

    return classes_of(pd.concat([d.clips for d in directions]))


def embedding_inputs(embeddings: ClipEmbeddings, directions: Sequence,
                     blocks: Sequence[Block] | None = None, classes: Sequence[str] | None = None,
                     splits: Sequence[str] = ("train", *SCORED_SPLITS)):
    """``(features, labels, clips)`` for :func:`helpers.protocol.evaluate_clip_model`.

    Each is a dict per direction name, then per split: ``features[d][s]`` ``(n_clips,
    n_columns)`` float32 (the ``blocks`` of the embedding, all when None), ``labels[d][s]`` the
    class indices in ``classes`` (default: the sorted labels of the directions' clips) and
    ``clips[d][s]`` the clip names, in the order of the direction's clip table. Clips the
    embedding skipped are left out; a split left without clips is left out.
    """
    from helpers.data import encode_labels

    classes = list(classes) if classes is not None else _classes(directions)
    columns = block_columns(embeddings.config, blocks)
    features, labels, clips = {}, {}, {}
    for direction in directions:
        table = direction.clips
        features[direction.name], labels[direction.name], clips[direction.name] = {}, {}, {}
        for split in splits:
            part = table[table["split"] == split]
            rows, present = _rows(embeddings, part["fname"], f"{direction.name}, {split}")
            if len(rows) == 0:
                continue
            part = part[present]
            features[direction.name][split] = embeddings.X[rows][:, columns].astype(np.float32)
            labels[direction.name][split] = encode_labels(part["label"], classes)
            clips[direction.name][split] = part["fname"].to_numpy()
    return features, labels, clips


def evaluate_transfer(recipes: Sequence[TransferRecipe], directions: Sequence, seeds: Sequence[int],
                      embeddings: ClipEmbeddings | Mapping[EmbeddingConfig, ClipEmbeddings],
                      classes: Sequence[str] | None = None):
    """Every recipe in every direction with every seed, scored on the protocol's four splits.

    ``embeddings`` holds the clips of the directions, made with each recipe's
    ``EmbeddingConfig`` (one :class:`ClipEmbeddings`, or a mapping from config to embeddings).
    Returns :class:`helpers.protocol.Runs`, which :func:`helpers.protocol.summarise` and
    :func:`helpers.protocol.paired` read like the CNNs' runs.
    """
    from threadpoolctl import threadpool_limits

    from helpers.protocol import Runs, evaluate_clip_model

    classes = list(classes) if classes is not None else _classes(directions)
    runs = Runs(pd.DataFrame(), classes=classes)
    for recipe in recipes:
        emb = (embeddings.get(recipe.embedding) if isinstance(embeddings, Mapping)
               else embeddings)
        if emb is None:
            raise KeyError(f"no embeddings for recipe {recipe.name!r} ({recipe.embedding})")
        _check_config(recipe, emb)
        features, labels, clips = embedding_inputs(emb, directions, recipe.blocks, classes)
        with threadpool_limits(limits=HEAD_THREADS):
            runs = runs + evaluate_clip_model(recipe.name, recipe.head.make, features, labels,
                                              clips, classes, seeds)
    return runs


def evaluate_transfer_per_fold(recipe_of: Mapping[str, TransferRecipe], directions: Sequence,
                               seeds: Sequence[int],
                               embeddings: ClipEmbeddings | Mapping[EmbeddingConfig, ClipEmbeddings],
                               name: str, classes: Sequence[str] | None = None):
    """One model ``name`` whose recipe differs from fold to fold: ``recipe_of[direction.name]``
    is fit and scored in that direction only (each fold's own nested choice, as
    :func:`load_transfer_choice` returns it), with every seed of ``seeds``. The transfer
    counterpart of :func:`helpers.protocol.evaluate_per_fold`; returns
    :class:`helpers.protocol.Runs`."""
    from helpers.protocol import Runs

    missing = [d.name for d in directions if d.name not in recipe_of]
    if missing:
        raise KeyError(f"no recipe for fold(s) {missing}; the choice names {sorted(recipe_of)}")
    classes = list(classes) if classes is not None else _classes(directions)
    out = Runs(pd.DataFrame(), classes=classes)
    for direction in directions:
        recipe = recipe_of[direction.name]
        out = out + evaluate_transfer([recipe], [direction], seeds, embeddings,
                                      classes).rename(recipe.name, name)
    return out


def save_transfer_choice(path, chosen: TransferRecipe, per_fold: Mapping[str, TransferRecipe],
                         extra: Mapping[str, Any] | None = None) -> Path:
    """Write a nested choice of transfer recipe as JSON, atomically: ``"recipe"`` (``chosen``,
    the choice most folds made, for a model trained on every library), ``"per_fold"`` (fold name
    -> that fold's own recipe, so that a later chapter builds fold L on what fold L chose) and
    the keys of ``extra`` (how it was chosen, its scores). :func:`load_transfer_choice` reads it.
    Used in: notebooks/09_pretrained.ipynb (``results/best_transfer.json``)."""
    from helpers.files import write_json

    extra = dict(extra or {})
    clash = sorted({"recipe", "per_fold"} & set(extra))
    if clash:
        raise ValueError(f"save_transfer_choice: extra may not hold the keys {clash}")
    return write_json(path, {"recipe": chosen.to_dict(),
                             "per_fold": {str(f): r.to_dict() for f, r in per_fold.items()},
                             **extra})


def load_transfer_choice(path) -> tuple[TransferRecipe, dict[str, TransferRecipe]]:
    """``(chosen, {fold name: recipe})`` written by :func:`save_transfer_choice`. A file
    without ``"per_fold"`` (written before the nested protocol) gives an empty dict: every fold
    then uses ``chosen``. Used in: notebooks/10_shipping.ipynb."""
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no saved transfer choice (notebook 09 writes it)") from None
    return (TransferRecipe.from_dict(data["recipe"]),
            {str(f): TransferRecipe.from_dict(r) for f, r in data.get("per_fold", {}).items()})


def fit_head(recipe: TransferRecipe, embeddings: ClipEmbeddings, clips_with_split: pd.DataFrame,
             seed: int = 0):
    """``recipe``'s head fit on the clips of ``clips_with_split`` whose ``split`` is "train".

    The labels are the class names (``pipeline.classes_``, sorted), so the fitted pipeline
    stands alone: ``pipeline.predict_proba(recipe.features(new_embeddings))``. Clips the
    embedding skipped are left out. Used in: notebooks/09_pretrained.ipynb (the head's size),
    notebooks/10_shipping.ipynb (the head trained on both libraries, to ship).
    """
    from threadpoolctl import threadpool_limits

    _check_config(recipe, embeddings)
    train = clips_with_split[clips_with_split["split"] == "train"]
    rows, present = _rows(embeddings, train["fname"], "training clips")
    if len(rows) == 0:
        raise ValueError("fit_head: no training clip with an embedding (split == 'train')")
    pipeline = recipe.head.make(seed)
    with threadpool_limits(limits=HEAD_THREADS):
        pipeline.fit(embeddings.X[rows][:, recipe.columns()],
                     train["label"].to_numpy()[present].astype(str))
    return pipeline


HEAD_FILE = "head.npz"  # a transfer bundle's head as arrays (no pickle), beside meta.json


def head_arrays(pipeline) -> dict[str, np.ndarray]:
    """A fitted head (:meth:`TransferHead.make` + fit) as plain arrays: ``keep`` (the columns
    it reads), the standardiser's ``mean``/``scale`` and the classifier's weights
    (``coef``/``intercept`` for logistic regression, ``coef_0.., intercept_0..`` per layer for
    the MLP), plus ``classes``."""
    selector, scaler, classifier = pipeline[0], pipeline[-2], pipeline[-1]
    arrays = {"keep": selector.get_support(), "mean": scaler.mean_, "scale": scaler.scale_,
              "classes": np.asarray(classifier.classes_).astype(str)}
    if hasattr(classifier, "coefs_"):
        for i, (w, b) in enumerate(zip(classifier.coefs_, classifier.intercepts_)):
            arrays[f"coef_{i}"], arrays[f"intercept_{i}"] = w, b
    else:
        arrays["coef"], arrays["intercept"] = classifier.coef_, classifier.intercept_
    return {k: np.asarray(v) for k, v in arrays.items()}


def head_inputs(arrays: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """The standardised head input ``(X[:, keep] - mean) / scale`` (what a distance detector
    scores); a head saved without ``keep`` reads every column."""
    X = np.asarray(X, np.float64)
    if "keep" in arrays:
        X = X[:, np.asarray(arrays["keep"], bool)]
    return (X - arrays["mean"]) / arrays["scale"]


def head_probabilities(arrays: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` of the head in ``arrays`` for embeddings ``X``
    (the head's columns): the same numbers as the scikit-learn pipeline's ``predict_proba``."""
    h = head_inputs(arrays, X)
    if "coef" in arrays:
        logits = h @ arrays["coef"].T + arrays["intercept"]
    else:
        n_layers = sum(1 for k in arrays if k.startswith("coef_"))
        for i in range(n_layers):
            h = h @ arrays[f"coef_{i}"] + arrays[f"intercept_{i}"]
            if i < n_layers - 1:
                h = np.maximum(h, 0.0)  # ReLU between layers, softmax at the end
        logits = h
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def save_transfer_bundle(directory, recipe: TransferRecipe, pipeline, *, calibration=None,
                         ood=None, extra: dict | None = None) -> Path:
    """Write a ``"transfer"`` model bundle: ``meta.json`` (kind, classes, the recipe, which
    pretrained networks it needs, optional temperature and OOD detector) and ``head.npz``.

    ``python -m helpers predict`` runs it offline: the musicnn checkpoints ship inside the
    ``musicnn`` wheel (``pip install --no-deps "musicnn>=0.1,<0.2"``), aiSFX's (when the
    embedding uses it) inside the ``aisfx`` wheel. Written atomically.
    Used in: notebooks/10_shipping.ipynb.
    """
    from helpers.files import atomic_folder, write_json
    from helpers.models import META_FILE, OOD_FILE, calibration_meta

    arrays = head_arrays(pipeline)
    classes = [str(c) for c in arrays.pop("classes")]
    entries, ood_arrays = calibration_meta(calibration, ood, n_classes=len(classes))
    meta = {"kind": "transfer", "classes": classes, "recipe": recipe.to_dict(),
            "pretrained": {"package": "musicnn", "install": 'pip install --no-deps "musicnn>=0.1,<0.2"',
                           "networks": list(recipe.embedding.models),
                           **({"also": "aisfx", "install_also": 'pip install --no-deps "aisfx>=0.1.2,<0.2"'}
                              if recipe.embedding.uses_aisfx else {})},
            "head_file": HEAD_FILE, "extra": dict(extra or {}), **entries}

    def fill(tmp: Path) -> None:
        np.savez(tmp / HEAD_FILE, **arrays)
        write_json(tmp / META_FILE, meta)
        if ood_arrays:
            np.savez(tmp / OOD_FILE, **ood_arrays)

    return atomic_folder(directory, fill)


def cross_library_neighbours(X: np.ndarray, labels, libraries, shares=None) -> float:
    """Share of clips whose nearest neighbour **in another library** has the same label.

    A one-nearest-neighbour classifier trained on the other libraries' clips: features ``X``
    ``(n_clips, d)`` are standardised (over all clips; columns that barely vary, see
    :data:`MIN_STD`, are left out) and compared by cosine similarity.
    It asks of a representation whether a class sounds alike across sample libraries, with
    nothing trained on top. ``shares`` (optional, one entry per clip: the other libraries its
    recordings also appear in, a set or a ";"-separated string as in the demo's ``shares``
    column) keeps a clip from finding its neighbour in a library that holds one of its own
    recordings: that would be memory, not similarity. Used in: notebooks/09_pretrained.ipynb.
    """
    X = np.asarray(X, dtype=np.float64)
    labels, libraries = np.asarray(labels), np.asarray(libraries).astype(str)
    if not len(X) == len(labels) == len(libraries):
        raise ValueError(f"X, labels and libraries need one row per clip: {len(X)}, "
                         f"{len(labels)}, {len(libraries)}")
    if len(np.unique(libraries)) < 2:
        raise ValueError("cross_library_neighbours needs clips of at least two libraries")
    from sklearn.feature_selection import VarianceThreshold

    X = VarianceThreshold(MIN_STD ** 2).fit_transform(X)  # as the heads: see MIN_STD
    Z = (X - X.mean(0)) / X.std(0)
    Z /= np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    similarity = Z @ Z.T
    similarity[libraries[:, None] == libraries[None, :]] = -np.inf
    if shares is not None:
        shares = [_library_set(s) for s in shares]
        if len(shares) != len(X):
            raise ValueError(f"shares needs one entry per clip: {len(shares)} for {len(X)} clips")
        names = np.unique(libraries)
        # blocked[i, k]: clip i shares a recording with library names[k]
        blocked = np.array([[n in s for n in names] for s in shares], dtype=bool)
        column = np.searchsorted(names, libraries)
        pairs = blocked[:, column] | blocked[:, column].T  # either clip shares with the other's library
        similarity[pairs] = -np.inf
    usable = np.isfinite(similarity).any(1)
    if not usable.any():
        raise ValueError("no clip has a neighbour in another library that shares none of its recordings")
    return float(np.mean(labels[similarity.argmax(1)][usable] == labels[usable]))


def _library_set(value) -> frozenset:
    """A ``shares`` entry as a set of library names (a ";"-separated string, a set, or empty)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return frozenset()
    if isinstance(value, str):
        return frozenset(t for t in value.split(";") if t)
    return frozenset(str(v) for v in value)
