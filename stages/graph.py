"""DVC stage `graph@<dataset>`: see `mer graph --help`; the body's module is named in mer.cli.STAGES."""
import sys

from mer.cli import main

raise SystemExit(main(["graph", *sys.argv[1:]]))
