"""Motion: magnification (:mod:`~mer.motion.evm` Eulerian, :mod:`~mer.motion.magnet`
learning-based, :mod:`~mer.motion.magnify` the stage), TV-L1 flow and optical strain
(:mod:`~mer.motion.flow`, stage :mod:`~mer.motion.flow_stage`)."""
