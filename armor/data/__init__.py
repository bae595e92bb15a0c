"""Data: tensors in [0, 1] on the training device, fixed splits, batched on-device augmentation."""
from .augment import PRESETS, augment, resolve_preset
from .datasets import NAMED, Dataset, default_data_dir, from_arrays, load_dataset

__all__ = ["Dataset", "NAMED", "PRESETS", "augment", "default_data_dir", "from_arrays", "load_dataset",
           "resolve_preset"]
