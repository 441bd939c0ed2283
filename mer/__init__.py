"""mer: a reproducible, leak-free micro-expression recognition pipeline.

Stages (``stages/``) are thin DVC entry points; everything they do lives here.
"""

__version__ = "0.1.0"
