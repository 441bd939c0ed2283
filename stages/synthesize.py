"""DVC stage `synthesize@<corpus>`: build data/raw/<corpus> from params `synthesize` (mer.synth.stage.run)."""
import sys

from mer.cli import main

raise SystemExit(main(["synthesize", *sys.argv[1:2]]))
