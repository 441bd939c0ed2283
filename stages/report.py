"""DVC stage `report`: reports/summary.md, one row per method of params `methods`."""
from mer.cli import main

raise SystemExit(main(["report"]))
