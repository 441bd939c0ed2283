"""DVC stage `crop@<dataset>`: see `mer crop --help`; the body is mer.face.stage.run."""
import sys

from mer.cli import main

raise SystemExit(main(["crop", *sys.argv[1:]]))
