"""DVC stage `lbptop@<dataset>`: see `mer lbptop --help`; the body is mer.features.stage.run."""
import sys

from mer.cli import main

raise SystemExit(main(["lbptop", *sys.argv[1:]]))
