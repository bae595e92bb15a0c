"""Training: the loop, checkpoints, LR schedules."""
from .checkpoint import load_checkpoint, save_checkpoint
from .trainer import Callback, Trainer, build_model, pick_device, train

__all__ = ["Callback", "Trainer", "build_model", "load_checkpoint", "pick_device", "save_checkpoint", "train"]
