"""Time-axis processing of clips: TIM resampling (:mod:`mer.temporal.tim`)."""
