"""Command line: ``python -m helpers <command>``.

Commands
--------
data demo            build the offline demo dataset in ``data/demo`` from seven sample
                     libraries (reused when present); ``--libraries two``: the two pip
                     SoundFonts only, into ``data/demo_two``
data unknowns       render the held-aside real unknowns (instruments outside the classes) into
                     ``data/demo_unknowns`` from the demo's libraries (notebook 10 also builds it)
data fsdkaggle2018   download and unpack FSDKaggle2018 (or use ``$FSDKAGGLE2018_DIR``)
chain                execute the numbered notebooks in order with papermill
predict              label audio files or folders with a trained model (CSV on stdout)
report               regenerate the README's results, key figures and gallery
environment          print the machine, packages and pinned numeric settings (JSON)
book                 build the web book (build/book/html) from the last chain run's notebooks
tune                 random search of the CNN's hyperparameters (``--workers N``: distributed)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_data(args: argparse.Namespace) -> int:
    if args.dataset == "demo":
        from dataclasses import replace

        from helpers.demo import DEMO, TWO_SOUNDFONTS, build_demo

        config = replace(DEMO, clips_per_class=args.clips_per_class, seed=args.seed)
        out = args.out
        if args.libraries == "two":
            config = replace(config, libraries=TWO_SOUNDFONTS, drop_duplicates=False)
            if out is None:
                from helpers import paths

                out = paths.data_dir() / "demo_two"
        root = build_demo(out, config, force=args.force, workers=args.workers)
        print(f"demo dataset ready: {root}")
        return 0
    if args.dataset == "unknowns":
        from helpers.unknowns import build_unknowns

        try:
            root = build_unknowns(args.out, force=args.force, workers=args.workers)
        except RuntimeError as exc:  # no library of the demo on this machine
            print(f"data: {exc}", file=sys.stderr)
            return 1
        print(f"real unknowns ready: {root}")
        return 0
    from helpers.download import DownloadError, fetch_fsdkaggle2018

    try:
        root = fetch_fsdkaggle2018(args.out)
    except DownloadError as exc:
        print(f"data: {exc}", file=sys.stderr)
        return 1
    print(f"FSDKaggle2018 ready: {root}")
    return 0


def _cmd_chain(args: argparse.Namespace) -> int:
    from helpers.chain import ChainError, run_chain

    try:
        overrides = {k: v for k, v in (("dataset", args.dataset), ("subset", args.subset),
                                       ("verified_only", args.verified_only)) if v}
        run_chain(args.profile, start=args.start, stop=args.stop, progress=not args.quiet,
                  overrides=overrides)
    except ChainError as exc:
        print(f"chain stopped: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from helpers.predict import predict_paths

    try:
        return predict_paths(args.paths, model=args.model)
    except (FileNotFoundError, ValueError) as exc:  # a missing or unreadable bundle, a bad setting
        print(f"predict: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"predict: the model bundle's meta.json lacks the entry {exc}", file=sys.stderr)
        return 2


def _cmd_tune(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from helpers.tune_command import TuneJob, run_tune_command
    from helpers.tuning import TuningError

    try:
        job = TuneJob(**{f.name: getattr(args, f.name) for f in fields(TuneJob)})
        return run_tune_command(job)
    except (TuningError, ValueError, FileNotFoundError) as exc:
        print(f"tune: {exc}", file=sys.stderr)
        return 2


def _add_tune_parser(sub) -> None:
    tune = sub.add_parser(
        "tune", help="random search of the CNN's hyperparameters",
        description="Random search scored on clip accuracy: on cross-library validation where the "
                    "dataset records each clip's library (the demo), else on validation. "
                    "--workers N starts a KerasTuner "
                    "chief and N workers here; with KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and "
                    "KERASTUNER_ORACLE_PORT set, the command runs that one role instead.")
    tune.add_argument("--dataset", choices=["demo", "fsdkaggle2018"], default="demo")
    tune.add_argument("--subset", default="instruments19",
                      help="subset name or comma-separated class names (default instruments19)")
    tune.add_argument("--max-clips-per-class", type=int, default=None)
    tune.add_argument("--trials", type=int, default=10, help="number of trials (default 10)")
    tune.add_argument("--epochs", type=int, default=30,
                      help="max epochs per trial (default 30, as in notebook 05)")
    tune.add_argument("--patience", type=int, default=4, help="early-stopping patience")
    tune.add_argument("--batch-size", type=int, default=64,
                      help="training batch size (default 64, as in notebook 05)")
    tune.add_argument("--seed", type=int, default=0, help="split, training and sampling seed")
    tune.add_argument("--workers", type=int, default=0,
                      help="local worker processes (default 0: search in this process)")
    tune.add_argument("--host", default="127.0.0.1", help="address the chief listens on")
    tune.add_argument("--port", type=int, default=0, help="chief's port (default: a free one)")
    tune.add_argument("--directory", type=Path, default=None,
                      help="KerasTuner folder (default build/tuning)")
    tune.add_argument("--project-name", default="tuning")
    tune.add_argument("--best", type=Path, default=None,
                      help="where to write the best configuration (default "
                           "<directory>/best_hyperparameters.json; notebook 10 ships from "
                           "results/best_hyperparameters.json, notebook 05's)")
    tune.add_argument("--timeout", type=float, default=3600.0,
                      help="seconds before unfinished processes are stopped (default 3600)")
    tune.add_argument("--wait-seconds", type=float, default=300.0,
                      help="how long the chief waits for all workers before starting")
    tune.add_argument("--verbose", type=int, default=0, choices=[0, 1])
    tune.set_defaults(func=_cmd_tune)


def _cmd_report(args: argparse.Namespace) -> int:
    from helpers.report import write_readme

    print(f"updated {write_readme()}")
    return 0


def _cmd_environment(args: argparse.Namespace) -> int:
    import json

    from helpers.environment import describe

    print(json.dumps(describe(), indent=2))
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    from helpers.book import BookError, build_book

    try:
        record = build_book(out=args.out, quiet=not args.verbose)
    except BookError as exc:
        print(f"book: {exc}", file=sys.stderr)
        return 1
    for warning in record["warnings"]:
        print(warning, file=sys.stderr)
    index = Path(record["html"]) / "index.html"
    print(f"book: {len(record['pages'])} chapters, {record['bytes'] / 2**20:.1f} MiB, built in "
          f"{record['seconds']:.0f} s ({len(record['warnings'])} warning(s)): {index}\n"
          f"view it: python -m http.server -d {record['html']}  (then http://127.0.0.1:8000)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build or download a dataset")
    data.add_argument("dataset", choices=["demo", "unknowns", "fsdkaggle2018"])
    data.add_argument("--out", type=Path, default=None,
                      help="target folder (default: data/demo, data/demo_unknowns or data/fsdkaggle2018)")
    data.add_argument("--clips-per-class", type=int, default=120,
                      help="demo only: clips per class, train and test together (default 120)")
    data.add_argument("--seed", type=int, default=0, help="demo only: random seed (default 0)")
    data.add_argument("--force", action="store_true", help="demo and unknowns: rebuild even if present")
    data.add_argument("--libraries", choices=["two", "all"], default="all",
                      help="demo only: 'all' seven deduplicated libraries, five of them fetched "
                           "from Debian's archive (default; what the notebooks read), or 'two' "
                           "pip SoundFonts only, no download, into data/demo_two")
    data.add_argument("--workers", type=int, default=1,
                      help="demo and unknowns: rendering processes (default 1; same files either way)")
    data.set_defaults(func=_cmd_data)

    chain = sub.add_parser("chain", help="execute the numbered notebooks with papermill")
    chain.add_argument("--profile", choices=["full", "smoke"], default="full",
                       help="full: the notebooks' defaults (make run); smoke: tiny, for tests")
    chain.add_argument("--from", dest="start", default=None, metavar="NN",
                       help="restart from chapter NN (e.g. 04)")
    chain.add_argument("--to", dest="stop", default=None, metavar="NN",
                       help="stop after chapter NN (e.g. --from 03 --to 03 reruns one chapter)")
    chain.add_argument("--verified-only", action="store_true",
                       help="keep only training clips whose label a person verified (FSDKaggle2018)")
    chain.add_argument("--quiet", action="store_true", help="no per-cell progress bars")
    chain.add_argument("--dataset", choices=["demo", "fsdkaggle2018"], default=None,
                       help="run every notebook on this dataset (default: the notebooks' own, demo)")
    chain.add_argument("--subset", default=None,
                       help="class subset for every notebook: seed5, keras10, instruments19, all41")
    chain.set_defaults(func=_cmd_chain)

    predict = sub.add_parser("predict", help="label audio files with a trained model")
    predict.add_argument("paths", nargs="+", type=Path, help="audio files or folders (recursive)")
    predict.add_argument("--model", type=Path, default=None,
                         help="model bundle folder or .tflite file (default: models/instrument_classifier, the shipped model)")
    predict.set_defaults(func=_cmd_predict)

    report = sub.add_parser("report", help="regenerate the README's results and gallery")
    report.set_defaults(func=_cmd_report)

    environment = sub.add_parser("environment", help="print the machine, packages and pinned "
                                                     "numeric settings a run would use (JSON)")
    environment.set_defaults(func=_cmd_environment)

    book = sub.add_parser("book", help="build the web book from the executed notebooks",
                          description="Build a static HTML site from executed/ (the last chain "
                                      "run; nothing is executed again) into build/book/html.")
    book.add_argument("--out", type=Path, default=None,
                      help="book folder (default: build/book under the output root)")
    book.add_argument("--verbose", action="store_true", help="show Sphinx's progress")
    book.set_defaults(func=_cmd_book)

    _add_tune_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
