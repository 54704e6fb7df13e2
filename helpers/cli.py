"""Command line: ``python -m helpers <command>``.

Commands
--------
data demo            build the offline demo dataset in ``data/demo`` (reused when present)
data fsdkaggle2018   download and unpack FSDKaggle2018 (or use ``$FSDKAGGLE2018_DIR``)
chain                execute the numbered notebooks in order with papermill
predict              label audio files or folders with a trained model (CSV on stdout)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_data(args: argparse.Namespace) -> int:
    if args.dataset == "demo":
        from helpers.demo import DemoConfig, build_demo

        config = DemoConfig(clips_per_class=args.clips_per_class, seed=args.seed)
        root = build_demo(args.out, config, force=args.force)
        print(f"demo dataset ready: {root}")
        return 0
    from helpers.download import fetch_fsdkaggle2018

    root = fetch_fsdkaggle2018(args.out)
    print(f"FSDKaggle2018 ready: {root}")
    return 0


def _cmd_chain(args: argparse.Namespace) -> int:
    from helpers.chain import ChainError, run_chain

    try:
        run_chain(args.profile, start=args.start, progress=not args.quiet)
    except ChainError as exc:
        print(f"chain stopped: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from helpers.predict import predict_paths

    try:
        return predict_paths(args.paths, model=args.model)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build or download a dataset")
    data.add_argument("dataset", choices=["demo", "fsdkaggle2018"])
    data.add_argument("--out", type=Path, default=None,
                      help="target folder (default: data/demo or data/fsdkaggle2018)")
    data.add_argument("--clips-per-class", type=int, default=120,
                      help="demo only: clips per class, train and test together (default 120)")
    data.add_argument("--seed", type=int, default=0, help="demo only: random seed (default 0)")
    data.add_argument("--force", action="store_true", help="demo only: rebuild even if present")
    data.set_defaults(func=_cmd_data)

    chain = sub.add_parser("chain", help="execute the numbered notebooks with papermill")
    chain.add_argument("--profile", choices=["full", "smoke"], default="full",
                       help="full: the notebooks' defaults (make run); smoke: tiny, for tests")
    chain.add_argument("--from", dest="start", default=None, metavar="NN",
                       help="restart from chapter NN (e.g. 04)")
    chain.add_argument("--quiet", action="store_true", help="no per-cell progress bars")
    chain.set_defaults(func=_cmd_chain)

    predict = sub.add_parser("predict", help="label audio files with a trained model")
    predict.add_argument("paths", nargs="+", type=Path, help="audio files or folders (recursive)")
    predict.add_argument("--model", type=Path, default=None,
                         help="model bundle folder or .tflite file (default: models/instrument_cnn)")
    predict.set_defaults(func=_cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
