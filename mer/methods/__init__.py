"""Recognition methods.  Each module registers one class in :mod:`mer.methods.registry`."""
