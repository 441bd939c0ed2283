"""DVC stage `magnify@<dataset>`: see `mer magnify --help`; the body's module is named in mer.cli.STAGES."""
import sys

from mer.cli import main

raise SystemExit(main(["magnify", *sys.argv[1:]]))
