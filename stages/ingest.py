"""DVC stage `ingest@<dataset>`: see `mer ingest --help`; the body is mer.pipeline.ingest."""
import sys

from mer.cli import main

raise SystemExit(main(["ingest", *sys.argv[1:]]))
