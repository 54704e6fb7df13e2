"""What one training job spends outside its training steps, and scoring it in one call.

A training job (:func:`helpers.experiment.run_train_job`) builds a network, trains it and scores
every split; the chain runs many of them, so a fraction of a second each adds up.
On the first cross-library direction of the demo set, the log-mel CNN, ONE TensorFlow thread
(as the jobs run), a fresh network per repeat, this prints the median over ``--repeats`` of:

- the first epoch against a later one (the first traces the training and validation steps);
- scoring the five splits a job scores with one ``predict`` call per split, and with one call
  for all of them (:func:`helpers.experiment.split_probabilities`), and whether the clip
  probabilities are the same.

Run: .venv/bin/python benchmarks/bench_job_overhead.py \
        [--repeats 5] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import helpers  # noqa: E402,F401  (selects Keras 2 before TensorFlow starts)


class EpochTimes:
    """A Keras callback factory: seconds of every epoch, in a list."""

    def __init__(self):
        import tf_keras as keras

        seconds: list[float] = []

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                seconds.append(time.perf_counter() - self.start)

        self.seconds = seconds
        self.callback = Callback()


def train(prepared, epochs: int, seed: int):
    """A fresh log-mel CNN trained ``epochs`` epochs; returns (model, epoch seconds)."""
    from helpers.models import LOGMEL_CNN, build_cnn
    from helpers.training import make_dataset, set_seed

    set_seed(seed)
    model = build_cnn(prepared.input_shape, len(prepared.classes), LOGMEL_CNN)
    n_classes = len(prepared.classes)
    data = make_dataset(*prepared.xy("train"), n_classes, 64, shuffle=True, seed=seed)
    timer = EpochTimes()
    val = make_dataset(*prepared.xy("val"), n_classes, 256)
    model.fit(data, validation_data=val, epochs=epochs, callbacks=[timer.callback], verbose=0)
    return model, timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="networks per setting (default 5)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per network (default 3)")
    args = parser.parse_args()

    from helpers.parallel import configure_threads

    configure_threads()
    import numpy as np
    import tf_keras as keras

    from helpers.data import dataset_root, load_clips
    from helpers.evaluation import aggregate_clips
    from helpers.experiment import prepare, split_probabilities
    from helpers.features import LOGMEL
    from helpers.splits import library_folds
    from helpers.training import predict_windows

    direction = library_folds(load_clips(dataset_root("demo")))[0]
    prepared = prepare(direction.clips, LOGMEL, progress=False)
    splits = tuple(prepared.splits)
    train(prepared, 1, 0)  # warm-up: oneDNN kernels, librosa-free TensorFlow paths
    keras.backend.clear_session()

    first, later, per_split, one_call = [], [], [], []
    same_probs = True
    for seed in range(args.repeats):
        model, seconds = train(prepared, args.epochs, seed)
        first.append(seconds[0])
        later += seconds[1:]
        start = time.perf_counter()
        separate = {s: aggregate_clips(predict_windows(model, prepared.splits[s].X),
                                       prepared.splits[s].clip_ids)[1] for s in splits}
        per_split.append(time.perf_counter() - start)
        start = time.perf_counter()
        together = split_probabilities(model, prepared, splits)
        one_call.append(time.perf_counter() - start)
        same_probs &= all(np.array_equal(separate[s], together[s]) for s in splits)
        keras.backend.clear_session()

    med = statistics.median
    windows = sum(len(prepared.splits[s].X) for s in splits)
    print(f"log-mel CNN, demo direction {direction.name}: {len(prepared.splits['train'].X)} training "
          f"windows, {windows} scored windows in {len(splits)} splits; medians of {args.repeats} "
          f"networks, one thread")
    print(f"  later epoch                                   {med(later):6.3f} s")
    print(f"  first epoch (traces the steps)                {med(first):6.3f} s   "
          f"{med(first) - med(later):.3f} s more than a later one")
    print(f"  scoring, one predict call per split           {med(per_split):6.3f} s")
    print(f"  scoring, one predict call for all splits      {med(one_call):6.3f} s   "
          f"saves {med(per_split) - med(one_call):.3f} s per training; same probabilities: "
          f"{same_probs}")


if __name__ == "__main__":
    main()
