"""Clip descriptors: LBP-TOP block histograms (:mod:`mer.features.lbptop`, stage
:mod:`mer.features.stage`) and landmark graphs (:mod:`mer.features.graph`, stage
:mod:`mer.features.graph_stage`)."""
