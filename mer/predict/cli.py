"""The ``mer predict`` and ``mer export`` subcommands (wired into :mod:`mer.cli`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_export(args: argparse.Namespace) -> None:
    from mer.config import load_params
    from mer.export import export_model

    path = export_model(args.method, load_params(args.params),
                        args.out)
    print(f"wrote {path}")


def cmd_predict(args: argparse.Namespace) -> None:
    from mer.predict import predict

    result = predict(args.source, args.model, onset=args.onset, apex=args.apex,
                     offset=args.offset, fps=args.fps, report=args.report, scheme=args.scheme)
    print(result.summary())


def add_predict_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``predict`` and ``export`` to the ``mer`` subcommands."""
    p = sub.add_parser("export", help="fit a method on all labelled clips of eval.datasets and "
                       "write one model file for mer predict")
    p.add_argument("method", help="a registered method (see: mer methods)")
    p.add_argument("--out", type=Path, default=None,
                   help="model file to write (default: models/<method>/model.mer)")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("predict", help="recognise the micro-expression in a video file or a "
                       "folder of frames with an exported model")
    p.add_argument("source", type=Path, help="video file (mp4, avi, ...) or folder of frames")
    p.add_argument("--model", type=Path, required=True, help="model file from: mer export <method>")
    p.add_argument("--onset", type=int, help="onset frame number (from 0); with --offset")
    p.add_argument("--apex", type=int, help="apex frame number (optional; spotted inside "
                   "onset..offset when left out)")
    p.add_argument("--offset", type=int, help="offset frame number (from 0); with --onset")
    p.add_argument("--fps", type=float, help="frame rate (overrides the file's; required for a "
                   "folder of frames)")
    p.add_argument("--report", type=Path, help="folder for the visual report (PNG + index.html)")
    p.add_argument("--scheme", help="the label scheme you expect; an error if the model has "
                   "another")
    p.set_defaults(fn=cmd_predict)
