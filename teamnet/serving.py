"""What a served model takes: `teamnet.inputs(video, model)` turns a video file into exactly
the arrays an exported program (`teamnet export`, .onnx or .pt2) or a checkpoint's model
takes, made as `teamnet predict` makes them (only the GOPs the clip reads re-encoded the way
the model's dataset was, extracted, the evaluation protocol's crops).

The decoder is imported here only when a video is turned into inputs: the training package
itself never needs it.
"""
from pathlib import Path

import numpy as np

from preprocess.errors import SettingsError

from . import checkpoint
from .config import INPUTS
from .predict import ClipMaker, data_settings


def protocol_of(model):
    """(modalities, num_segments, crops, input_size, data settings) of an exported program
    (its metadata) or a checkpoint (the evaluation protocol's defaults: 25 segments, 1
    crop, its input size)."""
    from .export import read_metadata
    model = Path(model)
    if model.suffix in (".onnx", ".pt2"):
        about = read_metadata(model)
        if about is None or not about.get("data_settings"):
            raise SettingsError(f"{model}: carries no teamnet metadata (exported by an older "
                                "version?): export it again with `teamnet export`")
        protocol = about["protocol"]
        return (tuple(item["name"] for item in about["inputs"]), protocol["num_segments"],
                protocol["crops"], protocol["input_size"], about["data_settings"])
    saved = checkpoint.load(model)
    trained = checkpoint.trained_config(saved, model)
    # the model's branches, in its input order, from its weights (no network built)
    modalities = tuple(m for m in INPUTS if f"heads.{m}.fc.weight" in saved["model"])
    return (modalities, 25, 1, trained.data.input_size, data_settings(saved, trained, model))


def inputs(video, model):
    """The arrays `model` (an exported .onnx or .pt2, or a checkpoint) takes for one video
    file: one array a branch, in the model's input order, of shape (1, T x crops, S, S, C),
    channels last, dtype as stored (uint8 I-frames; int8 or int16 MVs and residuals). Feed
    them to an ONNX session by its input names (the branches': iframe, mv, residual)."""
    from preprocess.in_memory import encoder_of, represent
    modalities, segments, crops, size, settings = protocol_of(model)
    make = ClipMaker(tuple(modalities), segments, size, crops, settings["p_stride"])
    file, index = represent(Path(video), settings, encoder_of(settings), make.gops_to_keep,
                            reads=make.frames_read)
    with file:
        (entry,) = index["by_id"].values()
        clip, _ = make(index, {entry["shard"]: file})
    return tuple(np.ascontiguousarray(clip[m].numpy()[None]) for m in modalities)
