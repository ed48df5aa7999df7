"""A checkpoint for deployment: weights only (.pt), a torch.export program (.pt2) or ONNX.

The exported programs take the clips as the loader makes them (integer tensors, one per
modality in the model's order, (N, T x crops, S, S, C) channels last) and return the fused
logits (N, K): the normalisation of docs/REPRESENTATION.md section 5 is inside, so a
serving stack feeds it the stored values and nothing else. The batch size is free; T, S and
the crops are those of the protocol exported. Each export is loaded back and checked against
the checkpoint's own model on random clips before it is kept.
"""
import os
from pathlib import Path

import torch
from torch import nn

from preprocess.errors import SettingsError, SetupError

from . import checkpoint
from .config import PIXELS
from .distributed import Context
from .evaluate import clip_logits
from .model import IN_CHANNELS, build_model

KINDS = (".pt", ".pt2", ".onnx")
KEPT = ("model", "config", "classes", "data_settings", "epoch")  # what inference reads
TOLERANCE = 1e-4


class Deployed(nn.Module):
    """The model as evaluation runs it (evaluate.clip_logits: normalisation inside, the
    protocol's crops averaged), on the CPU it is exported on, clips given in turn."""

    def __init__(self, model, crops):
        super().__init__()
        self.model, self.crops, self.modalities = model, crops, model.modalities
        self.context = Context(0, 0, 1, torch.device("cpu"))

    def forward(self, *clips):
        return clip_logits(self.model, dict(zip(self.modalities, clips)), self.crops,
                           self.context)


def example_clips(modalities, segments, size, crops, storage="int8", batch=2, seed=0):
    """Random clips of the loader's dtypes: uint8 I-frames (and RGB frames), MVs and
    residuals as stored (int8 or int16): the dtypes a program is exported for."""
    generator = torch.Generator().manual_seed(seed)
    stored = torch.int16 if storage == "int16" else torch.int8
    return tuple(torch.randint(0 if m in PIXELS else -128, 256 if m in PIXELS else 128,
                               (batch, segments * crops, size, size, IN_CHANNELS[m]),
                               generator=generator,
                               dtype=torch.uint8 if m in PIXELS else stored)
                 for m in modalities)


def export(checkpoint_path, out, segments=25, crops=1):
    """Write checkpoint_path's model to out (.pt: weights and what inference reads; .pt2 or
    .onnx: a program for segments x crops clips); returns the largest difference of the
    export's logits from the model's on random clips (checked below TOLERANCE)."""
    out = Path(out)
    if out.suffix not in KINDS:
        raise SettingsError(f"{out}: choose a file ending in {', '.join(KINDS)}")
    saved = checkpoint.load(checkpoint_path)
    if out.suffix == ".pt":
        small = {key: saved[key] for key in KEPT if key in saved}
        checkpoint.save(out, small)
        return 0.0
    trained = checkpoint.trained_config(saved, checkpoint_path)
    model = build_model(trained.model, len(saved["classes"]), initialise=False)
    checkpoint.load_model_state(model, saved["model"], checkpoint_path)
    deployed = Deployed(model, crops).eval()
    storage = (saved.get("data_settings") or {}).get("storage", "int8")
    clips = example_clips(model.modalities, segments, trained.data.input_size, crops, storage)
    with torch.no_grad():
        expected = deployed(*clips)
    # written beside out under a name of the same suffix (the exporters check it), renamed
    # to out only once checked: out is never a half-written or unchecked program
    temporary = out.with_name(f".{out.stem}.exporting{out.suffix}")
    try:
        (_to_onnx if out.suffix == ".onnx" else _to_program)(deployed, clips, temporary)
        got = (_run_onnx if out.suffix == ".onnx" else _run_program)(temporary, clips)
        difference = float((got - expected).abs().max())
        if difference > TOLERANCE:
            raise SettingsError(f"{out}: the export's logits differ from the model's by "
                                f"{difference:.2e} (more than {TOLERANCE}); not written")
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return difference


def _batch_free(clips):
    """dynamic_shapes of forward(*clips): the batch dimension free in every clip."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    return (tuple({0: batch} for _ in clips),)


def _to_program(deployed, clips, path):
    program = torch.export.export(deployed, clips, dynamic_shapes=_batch_free(clips))
    torch.export.save(program, path)


def _run_program(path, clips):
    with torch.no_grad():
        return torch.export.load(path).module()(*clips)


def _onnx_tools():
    try:
        import onnxruntime
        import onnxscript  # noqa: F401 - torch.onnx's exporter needs it
    except ImportError as error:
        raise SetupError(f"ONNX export needs {error.name}: pip install 'teamnet[export]' "
                         "(onnx, onnxscript, onnxruntime)") from None
    return onnxruntime


def _to_onnx(deployed, clips, path):
    _onnx_tools()
    names = list(deployed.modalities)
    torch.onnx.export(deployed, clips, str(path), input_names=names, output_names=["logits"],
                      dynamic_shapes=_batch_free(clips), dynamo=True, verbose=False,
                      external_data=False)  # one file (under protobuf's 2 GB for any arch)


def _run_onnx(path, clips):
    session = _onnx_tools().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), clips)}
    return torch.from_numpy(session.run(None, feeds)[0])
