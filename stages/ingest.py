"""DVC stage `ingest@<dataset>`: see `mer ingest --help`; the body is mer.data.stage.run."""
import sys

from mer.cli import main

raise SystemExit(main(["ingest", *sys.argv[1:]]))
