"""Training: the loop, its callbacks and guards, sweeps."""
from .callbacks import Callback, TrainContext
from .trainer import Trainer

__all__ = ["Callback", "TrainContext", "Trainer"]
