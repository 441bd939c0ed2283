"""Corpus adapters, label schemes and the manifest (the table every later stage reads)."""
