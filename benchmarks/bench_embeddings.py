"""How fast are musicnn clip embeddings? Prints clips/s, patches/s and x real time per stage.

On a sample of demo clips: the front end (read + resample to 16 kHz, then mel + patches), each
ported network alone (the outputs an embedding pools, ``--batch`` patches per call), and
:func:`helpers.pretrained.clip_embeddings` end to end without the cache. Each thread count runs
in a fresh process, because TensorFlow fixes its thread pools when it starts. Each time is the
fastest of ``--repeats`` runs after a warm-up.
x real time = seconds of audio / wall-clock seconds.

Run: .venv/bin/python benchmarks/bench_embeddings.py \
        [--clips 200] [--threads 1,2] [--batch 16]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import helpers  # noqa: F401  (selects Keras 2 before TensorFlow starts)


def worker(args) -> dict:
    """Time every stage in this process, with ``args.threads`` threads."""
    import tensorflow as tf

    threads = int(args.threads)  # one count in a worker
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)

    import numpy as np

    from helpers import pretrained as P
    from helpers.audio import load_audio
    from helpers.data import dataset_root, load_clips

    config = P.EmbeddingConfig()
    clips = load_clips(dataset_root(args.dataset))
    clips = clips.sample(min(args.clips, len(clips)), random_state=args.seed).reset_index(drop=True)
    outputs = tuple(dict.fromkeys(o for o, _ in config.pooling))

    def best(fn) -> float:
        """Fastest of ``--repeats`` wall-clock times of ``fn()`` (others share the machine)."""
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    signals = [load_audio(p, P.SAMPLE_RATE, config.max_seconds) for p in clips["path"]]
    patches = np.concatenate([P.musicnn_patches(P.musicnn_frontend(y, P.SAMPLE_RATE))
                              for y in signals])  # also warms up librosa's kernels
    for name in config.models:  # warm-up: weights, tracing, oneDNN kernels for both batch sizes
        P.musicnn_outputs(patches, name, outputs, batch_size=args.batch)
    t_read = best(lambda: [load_audio(p, P.SAMPLE_RATE, config.max_seconds) for p in clips["path"]])
    t_mel = best(lambda: [P.musicnn_patches(P.musicnn_frontend(y, P.SAMPLE_RATE)) for y in signals])
    models = {name: best(lambda name=name: P.musicnn_outputs(patches, name, outputs,
                                                              batch_size=args.batch))
              for name in config.models}
    t_total = best(lambda: P.clip_embeddings(clips, config, use_cache=False, progress=False,
                                             batch_patches=args.batch))
    return {"threads": threads, "clips": len(clips), "patches": len(patches),
            "audio_s": sum(len(y) for y in signals) / P.SAMPLE_RATE,
            "read": t_read, "mel": t_mel, "models": models, "total": t_total,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}


def show(r: dict) -> None:
    n, p, audio = r["clips"], r["patches"], r["audio_s"]

    def line(stage: str, seconds: float, patches: bool = True) -> None:
        rate = f"{p / seconds:8.1f} patches/s" if patches else " " * 19
        print(f"  {stage:44s} {seconds:7.2f} s {n / seconds:8.1f} clips/s {rate} "
              f"{audio / seconds:7.1f} x real time")

    print(f"\n{r['threads']} thread(s): {n} clips, {p} patches of 3 s, {audio / 60:.1f} min of "
          f"audio; peak memory {r['peak_rss_gib']:.1f} GiB")
    line("front end: read + resample to 16 kHz", r["read"], patches=False)
    line("front end: mel + patches", r["mel"])
    for name, seconds in r["models"].items():
        line(f"model: {name} ({1000 * seconds / p:.1f} ms/patch)", seconds)
    line("clip_embeddings, both models, no cache", r["total"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="demo clips to embed")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--batch", type=int, default=16, help="patches per model call")
    parser.add_argument("--repeats", type=int, default=2, help="keep the fastest of N runs")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    load = os.getloadavg()[0]
    print(f"musicnn embeddings on {args.dataset}: batch {args.batch}, fastest of {args.repeats}, "
          f"1-minute load average {load:.1f} on {os.cpu_count()} cores", flush=True)
    for threads in [int(t) for t in args.threads.split(",")]:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads),
               "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        cmd = [sys.executable, __file__, "--worker", "--threads", str(threads),
               "--clips", str(args.clips), "--batch", str(args.batch),
               "--repeats", str(args.repeats),
               "--dataset", args.dataset, "--seed", str(args.seed)]
        out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
        show(json.loads(out.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
