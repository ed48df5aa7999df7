"""Checkpoints: written whole (preprocess.atomic), read without unpickling code."""
import os
import shutil
from pathlib import Path

import torch

from preprocess.atomic import NO_SPACE, atomic_output, is_disk_full
from preprocess.errors import TeamnetError
from preprocess.settings import check_fields
from preprocess.store.layout import StoreError, check_settings

from .config import TrainConfig

REQUIRED = ("model", "config", "classes")  # what every checkpoint of `teamnet train` holds


class CheckpointError(TeamnetError):
    """A checkpoint that is missing, unreadable or does not fit what it is used with."""


def save(path, state):
    """Write a checkpoint; it appears under its name only once complete, so the previous one
    stays whole whatever happens (a full disk: the temporary file is removed)."""
    path = Path(path)
    try:
        with atomic_output(path) as temporary:
            torch.save(state, temporary)
    except (OSError, RuntimeError) as error:  # torch reports a full disk as a RuntimeError
        raise _not_written(path, error, "the previous checkpoint") from None


def save_as(path, saved):
    """Publish the checkpoint saved as path too, without a second copy on disk: a hard link
    (the next save replaces saved by a rename, so path keeps its content); a copy where the
    file system has no hard links."""
    path = Path(path)
    try:
        with atomic_output(path) as temporary:
            try:
                os.link(saved, temporary)
            except OSError as error:
                if is_disk_full(error):
                    raise
                shutil.copyfile(saved, temporary)
    except OSError as error:
        raise _not_written(path, error, saved) from None


def _not_written(path, error, intact):
    """The error for a checkpoint that could not be written; intact: what is still whole."""
    full = is_disk_full(error) or shutil.disk_usage(path.parent).free < 2**20
    return CheckpointError(f"could not write {path}: {NO_SPACE if full else error}; {intact} "
                           "is intact: make room, then continue with --resume")


def load(path, check=True):
    """A checkpoint's dict; only tensors and plain Python values (weights_only=True).
    check: it must be one of `teamnet train`'s (REQUIRED keys)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, not a zip, not torch's, or code inside: never run
        raise CheckpointError(f"{path} is not a teamnet checkpoint (torch cannot read it: "
                              f"{type(error).__name__})") from None
    if check and not (isinstance(state, dict) and all(key in state for key in REQUIRED)):
        raise CheckpointError(f"{path} is not a teamnet checkpoint (it lacks "
                              f"{', '.join(REQUIRED)}); use a last.pt or best.pt of `teamnet train`")
    if check:
        check_recorded(state, path)
    return state


def check_recorded(state, path):
    """What a checkpoint records of its data, checked as every other reader of it checks it
    (a checkpoint is a file anyone can edit): distinct class names, and data settings that
    an index would accept (preprocess.store.layout.check_settings)."""
    classes = state["classes"]
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)
            and len(set(classes)) == len(classes)):
        raise CheckpointError(f"{path}: its classes {str(classes)[:80]!r} are not a list of "
                              "distinct names; use a checkpoint of `teamnet train`")
    if state.get("data_settings") is not None:
        try:
            check_settings(state["data_settings"])
        except StoreError as error:
            raise CheckpointError(f"{path}: its data_settings cannot be used ({error})") from None


def trained_config(state, path):
    """The TrainConfig a checkpoint was trained with."""
    try:
        config = TrainConfig.from_dict(state["config"])
        for section in (config, config.data, config.model, config.optim):
            check_fields(section)  # a checkpoint is a file anyone can edit
    except (TypeError, KeyError, AttributeError, ValueError, TeamnetError) as error:
        raise CheckpointError(f"{path}: its config cannot be used ({error})") from None
    return config


def load_model_state(model, state, path):
    """Load a checkpoint's weights into the model its config describes."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{path}: its weights do not match its config ({first})") from None
