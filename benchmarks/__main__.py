"""``python -m benchmarks``: run every benchmark, print one table, optionally write JSON.

Both sides of a ratio are measured in the same run, interleaved.  BLAS is limited to
``--threads`` threads (default 1) for ours and the reference alike: on a small machine shared
with other work, multi-threaded BLAS timings swing wildly, and the pipeline runs one clip per core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.bench_kernels import Case, measure

# one module per topic, each exporting CASES
MODULES = ("bench_kernels", "bench_magnify", "bench_flow", "bench_landmarks", "bench_tgsr",
           "bench_dere_grl", "bench_man", "bench_mimic", "bench_moext")


def all_cases() -> list[Case]:
    import importlib
    return [c for m in MODULES for c in importlib.import_module(f"benchmarks.{m}").CASES]


def _target(row: dict) -> str:
    parts = []
    if row["max_ms"] is not None:
        parts.append(f"<= {row['max_ms']:g} ms")
    if row["min_ratio"] is not None:
        parts.append(f">= {row['min_ratio']:g}x")
    return ", ".join(parts) or "-"


def table(rows: list[dict]) -> str:
    head = (f"{'benchmark':<15} {'ours ms':>9} {'reference ms':>13} {'ratio':>8}  "
            f"{'target':<18} status")
    lines = [head, "-" * len(head)]
    for r in rows:
        status = "ok" if r["target_met"] else "MISSED"
        if r["min_ratio"] is None and r["max_ms"] is None:
            status = "-"
        lines.append(f"{r['name']:<15} {r['ours_ms']:>9.2f} {r['reference_ms']:>13.1f} "
                     f"{r['ratio']:>7.1f}x  {_target(r):<18} {status}")
    lines.append("")
    lines += [f"{r['name']}: {r['what']}; agreement: {r['agreement']}; "
              f"runs {r['runs']['ours']}/{r['runs']['reference']}" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    parser.add_argument("--rounds", type=int, default=15,
                        help="reference runs per case (default 15)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these cases")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)

    everything = all_cases()
    cases = [c for c in everything if not args.only or c.name in args.only]
    if not cases:
        parser.error(f"no such benchmark; choose from {', '.join(c.name for c in everything)}")
    with threadpool_limits(args.threads):
        rows = []
        for case in cases:
            print(f"running {case.name} ...", file=sys.stderr, flush=True)
            rows.append(measure(case, rounds=args.rounds))
    print(f"median wall time; {args.threads} BLAS thread(s); {os.cpu_count()} CPU(s); "
          f"numpy {np.__version__}; python {platform.python_version()}")
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"threads": args.threads, "cpus": os.cpu_count(),
                                         "platform": platform.platform(),
                                         "results": rows}, indent=2) + "\n")
    return 1 if args.strict and not all(r["target_met"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
