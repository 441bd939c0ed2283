"""DVC stage `synthesize`: build SynthME (data/raw/synthme) from params `synthesize`."""
from mer.cli import main

raise SystemExit(main(["synthesize"]))
