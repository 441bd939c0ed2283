"""DVC stage `crop@<dataset>`: see `mer crop --help`; the body is mer.pipeline.crop."""
import sys

from mer.cli import main

raise SystemExit(main(["crop", *sys.argv[1:]]))
