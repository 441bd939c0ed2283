"""Pieces the neural methods share: device and seeding, the fixed-epoch training loop, ResNet trunks.

The methods' ``nn.Module``s hold no training logic; the loop lives here once, so every method trains
the same way: a fresh model per fold, a fixed number of epochs (never chosen on the test fold),
seeded shuffling, and the device picked automatically.
"""
