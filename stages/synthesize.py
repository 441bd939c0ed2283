"""DVC stage `synthesize`: build SynthME (data/raw/synthme) from params `synthesize` (mer.synth.stage.run)."""
from mer.cli import main

raise SystemExit(main(["synthesize"]))
