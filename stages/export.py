"""DVC stage `export@<method>`: the final model on every labelled clip, one file for `mer predict`."""
import sys

from mer.cli import main

raise SystemExit(main(["export", *sys.argv[1:]]))
