"""mer: stage entry points (what dvc.yaml runs) and tools for micro-expression recognition.

Every subcommand reads ``params.yaml`` from the working directory (the repository root).  A
:class:`~mer.errors.MerError` is printed as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mer import __version__
from mer.errors import MerError


def _params(args) -> dict:
    from mer.config import load_params
    return load_params(args.params)


# stage name -> the module whose run(params[, dataset]) is the stage's body
STAGES = {"synthesize": "mer.synth.stage", "ingest": "mer.data.stage", "crop": "mer.face.stage",
          "tim": "mer.temporal.stage", "lbptop": "mer.features.stage",
          "magnify": "mer.motion.magnify", "flow": "mer.motion.flow_stage",
          "graph": "mer.features.graph_stage"}


def _stage(name: str):
    def run(args) -> None:
        import importlib
        body = importlib.import_module(STAGES[name]).run
        dataset = getattr(args, "dataset", None)
        print(body(_params(args)) if dataset is None else body(_params(args), dataset))
    return run


def cmd_train(args) -> None:
    from mer import artifacts
    from mer.eval.runner import train
    metrics = train(args.method, _params(args), artifacts.MODELS / args.method,
                    artifacts.METRICS / f"{args.method}.json")
    if "pooled" in metrics:
        print(f"{args.method}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics["pooled"].items()))
    else:   # cdmer: experiments are scored one by one, never pooled
        print(f"{args.method}, mean over {len(metrics['experiments'])} experiments: "
              + ", ".join(f"{k} {v:.3f}" for k, v in metrics["mean"].items()))


def cmd_report(args) -> None:
    from mer.eval.report import write_summary
    print(write_summary(list(_params(args)["methods"])), end="")


def cmd_params(args) -> None:
    from mer.config import PARAMS_FILE, compose_params, load_params
    text = compose_params(args.overrides)
    if args.write:
        PARAMS_FILE.write_text(text)
        load_params(PARAMS_FILE)
        print(f"wrote {PARAMS_FILE}")
    elif args.check:
        if not PARAMS_FILE.exists() or PARAMS_FILE.read_text() != text:
            raise MerError("differs from the composition of conf/", PARAMS_FILE,
                           "run: python -m mer params --write (and commit both)")
        print(f"{PARAMS_FILE} matches conf/")
    else:
        print(text, end="")


def cmd_methods(args) -> None:
    from mer.methods.registry import METHODS, get_method
    get_method("lbptop_svm")  # imports every method module
    for name, cls in sorted(METHODS.items()):
        print(f"{name:14s} inputs: {', '.join(cls.inputs)}")


def cmd_difficulty(args) -> None:
    from mer.eval.difficulty import difficulty_curve, write_curve
    params = _params(args)
    if args.seeds:
        params["eval"]["seeds"] = args.seeds
    rows = difficulty_curve(params, args.amplitudes, args.method)
    print(write_curve(rows, args.out, args.method), end="")


def cmd_spotting(args) -> None:
    from mer import artifacts
    from mer.temporal.apex import evaluate_spotting
    r = evaluate_spotting(artifacts.artifact_dir("crop", args.dataset))
    print(f"{args.dataset}: {r['clips']} clips; absolute apex error in frames against the annotated "
          f"apex: spotted median {r['spotted_median']:g} (mean {r['spotted_mean']:.2f}), midpoint "
          f"median {r['midpoint_median']:g} (mean {r['midpoint_mean']:.2f})")


def cmd_reproduce(args) -> None:
    from mer.eval.reproduce import reproduce
    path = reproduce(args.target, jobs=args.jobs, dataset=args.dataset, overrides=args.set,
                     dry_run=args.dry_run, only=args.only, collect=args.collect)
    print(path.read_text(), end="")
    print(f"\nwritten: {path}")
    if args.check:
        from mer.eval.reproduce import drifted
        bad = drifted(path)
        if bad:
            raise MerError(f"{len(bad)} row(s) differ from the published numbers or failed", path,
                           "read the report; rerun a row with dvc exp run -S +experiment=<preset>")


def cmd_bench(args) -> None:
    try:
        from benchmarks.__main__ import main as bench_main
    except ImportError:
        raise MerError("the benchmarks/ folder is not importable", Path.cwd(),
                       "run `mer bench` from the repository root") from None
    code = bench_main(args.rest)
    if code:
        raise SystemExit(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mer", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mer {__version__}")
    parser.add_argument("--params", default="params.yaml", type=Path,
                        help="params file (default: params.yaml)")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    p = sub.add_parser("synthesize", help="build a SynthME corpus into data/raw/<name>")
    p.add_argument("dataset", nargs="?", default="synthme", metavar="name",
                   help="synthme (default) or a key of params synthesize.variants")
    p.set_defaults(fn=_stage("synthesize"))
    for name, text in (("ingest", "read and validate a corpus; write its manifest"),
                       ("crop", "detect, align and crop faces with 68 landmarks per frame"),
                       ("tim", "temporal interpolation (TIM) to each of tim.lengths frames"),
                       ("lbptop", "LBP-TOP grid features of the TIM clips"),
                       ("magnify", "motion magnification (EVM or MagNet) of the key frames"),
                       ("flow", "TV-L1 optical flow and optical strain between key frames"),
                       ("graph", "landmark-graph node features of the magnified key frames")):
        p = sub.add_parser(name, help=text)
        p.add_argument("dataset", help="a dataset name of params 'data'")
        p.set_defaults(fn=_stage(name))
    p = sub.add_parser("train", help="run one method under the evaluation protocol")
    p.add_argument("method", help="a registered method (see: mer methods)")
    p.set_defaults(fn=cmd_train)
    sub.add_parser("report", help="write reports/summary.md and print it").set_defaults(fn=cmd_report)
    p = sub.add_parser("params", help="compose params.yaml from conf/ (Hydra, as dvc exp run does)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=lbptop_svm")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="write params.yaml")
    g.add_argument("--check", action="store_true", help="fail if params.yaml differs")
    p.set_defaults(fn=cmd_params)
    from mer.data.datasets_cli import add_datasets_commands
    add_datasets_commands(sub)
    from mer.predict.cli import add_predict_commands
    add_predict_commands(sub)
    sub.add_parser("methods", help="list registered methods and their inputs").set_defaults(
        fn=cmd_methods)
    p = sub.add_parser("difficulty", help="SynthME difficulty curve: baseline UF1 against amplitude")
    p.add_argument("--amplitudes", nargs="+", type=float, default=[0.005, 0.01, 0.02, 0.035, 0.05],
                   help="apex amplitudes, fractions of the face width")
    p.add_argument("--method", default="lbptop_svm")
    p.add_argument("--seeds", nargs="+", type=int, help="override eval.seeds (lbptop_svm is "
                   "deterministic: one seed gives the same numbers)")
    p.add_argument("--out", type=Path, default=Path("reports/difficulty.md"))
    p.set_defaults(fn=cmd_difficulty)
    p = sub.add_parser("spotting", help="apex spotting against a corpus's annotated apexes")
    p.add_argument("dataset", help="a dataset with annotated apexes and crop artifacts (synthme)")
    p.set_defaults(fn=cmd_spotting)
    p = sub.add_parser("reproduce", help="rerun a paper's published rows as DVC experiments and "
                       "write reports/reproduce/<paper>-<table>[-<dataset>].md beside the published numbers")
    p.add_argument("target", help="<paper>[:<table>], a key of results/published.yaml (e.g. tgsr:cdmer)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="dvc queue workers (default 1)")
    p.add_argument("--dataset", default="", help="run every preset on this dataset instead "
                   "(e.g. synthme: checks the machinery without the licensed corpora)")
    p.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Hydra override for every experiment (repeatable)")
    p.add_argument("--only", action="append", metavar="PRESET",
                   help="run only this preset's rows (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="report what would run; queue nothing")
    p.add_argument("--collect", action="store_true", help="run nothing: report the newest finished "
                   "experiment of each row (after an interrupted wait)")
    p.add_argument("--check", action="store_true", help="exit with an error when a row differs "
                   "from the published number beyond its tolerance, or failed")
    p.set_defaults(fn=cmd_reproduce)
    p = sub.add_parser("bench", help="run the kernel benchmarks (ours vs reference, one run)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to the benchmarks")
    p.set_defaults(fn=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except MerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
