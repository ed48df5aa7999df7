"""Checkpoints: written whole (temporary file, then rename), read without unpickling code."""
import os
from pathlib import Path

import torch


def save(path, state):
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load(path):
    """A checkpoint's dict; only tensors and plain Python values (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    return torch.load(path, map_location="cpu", weights_only=True)
