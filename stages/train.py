"""DVC stage `train@<method>`: the shared protocol loop (mer.eval.runner.train)."""
import sys

from mer.cli import main

raise SystemExit(main(["train", *sys.argv[1:]]))
