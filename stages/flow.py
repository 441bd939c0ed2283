"""DVC stage `flow@<dataset>`: see `mer flow --help`; the body's module is named in mer.cli.STAGES."""
import sys

from mer.cli import main

raise SystemExit(main(["flow", *sys.argv[1:]]))
