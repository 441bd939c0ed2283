"""Clip descriptors: LBP-TOP block histograms (:mod:`mer.features.lbptop`)."""
