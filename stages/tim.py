"""DVC stage `tim@<dataset>`: see `mer tim --help`; the body is mer.pipeline.tim_stage."""
import sys

from mer.cli import main

raise SystemExit(main(["tim", *sys.argv[1:]]))
