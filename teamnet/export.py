"""A checkpoint for deployment: weights only (.pt), a torch.export program (.pt2) or ONNX.

The exported programs take the clips as the loader makes them (integer tensors, one per
modality in the model's order, (N, T x crops, S, S, C) channels last) and return the fused
logits (N, K): the normalisation of docs/REPRESENTATION.md section 5 is inside, so a
serving stack feeds it the stored values and nothing else. The batch size is free; T, S and
the crops are those of the protocol exported. Each export is loaded back and checked against
the checkpoint's own model on random clips before it is kept.
"""
import json
import os
import zipfile
from pathlib import Path

import torch
from torch import nn

from preprocess.atomic import partial_path
from preprocess.discover import PARTIAL_SUFFIX
from preprocess.errors import SettingsError, SetupError

from . import checkpoint
from .config import PIXELS
from .distributed import Context
from .evaluate import clip_logits
from .model import IN_CHANNELS, build_model

KINDS = (".pt", ".pt2", ".onnx")
METADATA_FORMAT = "teamnet-export"  # the metadata's key in ONNX, its "format" everywhere
METADATA_VERSION = 1
PT2_EXTRA = "extra/teamnet.json"  # where a .pt2 archive keeps it
METADATA_BYTES = 1 << 24
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
    if out.suffix == ".onnx":
        _onnx_tools()  # before any work: the message, not 10 s of exporting, comes first
    check_output(checkpoint_path, out)
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
    about = metadata(saved, trained, model.modalities, segments, crops, clips)
    # written beside out under this process's partial name with out's suffix (the exporters
    # check it), renamed to out only once checked: out is never a half-written or unchecked
    # program, and two exports to one out never share a temporary file
    temporary = partial_path(out).with_suffix(PARTIAL_SUFFIX + out.suffix)
    try:
        (_to_onnx if out.suffix == ".onnx" else _to_program)(deployed, clips, temporary,
                                                              json.dumps(about))
        got = (_run_onnx if out.suffix == ".onnx" else _run_program)(temporary, clips)
        difference = float((got - expected).abs().max())
        if difference > TOLERANCE:
            raise SettingsError(f"{out}: the export's logits differ from the model's by "
                                f"{difference:.2e} (more than {TOLERANCE}); not written")
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return difference


def check_output(checkpoint_path, out):
    """Refuse an --output that would replace the checkpoint exported, or any training
    checkpoint (one with optimizer state: `train --resume` needs it), untouched."""
    if not out.exists():
        return
    if out.is_dir():
        raise SettingsError(f"{out} is a folder: give a file name for --output")
    if os.path.samefile(out, checkpoint_path):
        raise SettingsError(f"--output {out} is the checkpoint being exported: writing it would "
                            "replace the training checkpoint; give another --output")
    if out.suffix == ".pt":
        try:
            held = checkpoint.load(out, check=False)
        except checkpoint.CheckpointError:
            held = None  # not torch's: refused below, as any file not ours
        if isinstance(held, dict) and "optimizer" in held:
            raise SettingsError(f"--output {out} is a training checkpoint (it holds optimizer "
                                "state, which `teamnet train --resume` needs): give another "
                                "--output; it was left untouched")
        if isinstance(held, dict) and all(key in held for key in checkpoint.REQUIRED):
            return  # an earlier export: replaced
    elif _exported_program(out):
        return
    raise SettingsError(f"--output {out} already holds a file that is not an export of teamnet; "
                        "it was left untouched: remove it or give another --output")


def _exported_program(path):
    """Whether a .pt2/.onnx file is one `export` wrote (it names its format and classes)."""
    return read_metadata(path) is not None


def _batch_free(clips):
    """dynamic_shapes of forward(*clips): the batch dimension free in every clip."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    return (tuple({0: batch} for _ in clips),)


def metadata(saved, trained, modalities, segments, crops, clips):
    """What a served export needs besides its weights (docs/FORMAT.md): the class of each
    logit, its inputs, the protocol it was exported for and how its videos are made."""
    return {"format": METADATA_FORMAT, "format_version": METADATA_VERSION,
            "classes": list(saved["classes"]),
            "inputs": [{"name": m, "dtype": str(x.dtype).removeprefix("torch."),
                        "shape": ["batch", *x.shape[1:]]} for m, x in zip(modalities, clips)],
            "protocol": {"num_segments": segments, "crops": crops,
                         "input_size": trained.data.input_size, "view": "tsn"},
            "model": trained.model.model, "data_settings": saved.get("data_settings")}


def read_metadata(path):
    """The metadata an exported .pt2 or .onnx file carries (metadata()), or None for a file
    that carries none (not an export of teamnet). Reads the one entry, bounded."""
    path = Path(path)
    try:
        if path.suffix == ".pt2":
            with zipfile.ZipFile(path) as archive:
                member = next((info for info in archive.infolist()
                               if info.filename.endswith(PT2_EXTRA)), None)
                if member is None or member.file_size > METADATA_BYTES:
                    return None
                text = archive.read(member).decode("utf-8")
        elif path.suffix == ".onnx":
            import onnx
            model = onnx.load(str(path), load_external_data=False)
            text = next((prop.value for prop in model.metadata_props
                         if prop.key == METADATA_FORMAT), None)
            if text is None:
                return None
        else:
            return None
        about = json.loads(text)
    except Exception:  # noqa: BLE001 - unreadable, not a zip, not ONNX (protobuf's errors)
        return None
    return about if isinstance(about, dict) and about.get("format") == METADATA_FORMAT else None


def _to_program(deployed, clips, path, about):
    program = torch.export.export(deployed, clips, dynamic_shapes=_batch_free(clips))
    torch.export.save(program, path, extra_files={PT2_EXTRA.split("/")[-1]: about})


def _run_program(path, clips):
    with torch.no_grad():
        return torch.export.load(path).module()(*clips)


def _onnx_tools():
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401 - torch.onnx's exporter needs it
    except ImportError as error:
        raise SetupError(f"ONNX export needs {error.name}: pip install 'teamnet[export]' "
                         "(onnx, onnxscript, onnxruntime)") from None
    return onnxruntime


def _to_onnx(deployed, clips, path, about):
    import onnx  # _onnx_tools checked it
    names = list(deployed.modalities)
    torch.onnx.export(deployed, clips, str(path), input_names=names, output_names=["logits"],
                      dynamic_shapes=_batch_free(clips), dynamo=True, verbose=False,
                      external_data=False)  # one file (under protobuf's 2 GB for any arch)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {METADATA_FORMAT: about})
    onnx.save(model, str(path))


def _run_onnx(path, clips):
    session = _onnx_tools().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), clips)}
    return torch.from_numpy(session.run(None, feeds)[0])
