"""Checkpoints: written whole (preprocess.atomic), read without unpickling code."""
from pathlib import Path

import torch

from preprocess.atomic import atomic_output
from preprocess.errors import TeamnetError


class CheckpointError(TeamnetError):
    """A checkpoint that is missing or does not fit the model or dataset it is used with."""


def save(path, state):
    """Write a checkpoint; it appears under its name only once complete."""
    with atomic_output(path) as temporary:
        torch.save(state, temporary)


def load(path):
    """A checkpoint's dict; only tensors and plain Python values (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    return torch.load(path, map_location="cpu", weights_only=True)
