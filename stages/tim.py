"""DVC stage `tim@<dataset>`: see `mer tim --help`; the body is mer.temporal.stage.run."""
import sys

from mer.cli import main

raise SystemExit(main(["tim", *sys.argv[1:]]))
