"""Time-axis processing of clips: TIM resampling (:mod:`mer.temporal.tim`, stage
:mod:`mer.temporal.stage`) and apex spotting (:mod:`mer.temporal.apex`)."""
