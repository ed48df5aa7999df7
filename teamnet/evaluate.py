"""Evaluation the way the paper reports it: 25 segments, centre crop, video score = mean of the
segments' scores; top-1, top-5, mean class accuracy, per-class accuracy, confusion matrix."""
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from preprocess.store import load_index

from . import checkpoint
from .config import TrainConfig
from .data import ClipDataset, make_loader
from .distributed import all_gather, setup
from .metrics import accuracy_report, save_confusion_image
from .model import build_model
from .splits import read_list
from .transforms import normalise


def predict(model, loader, context, autocast):
    """(logits (V, K), labels (V,)) for every video of the loader, gathered over ranks in
    dataset order; the padding the sampler adds for equal shares is dropped."""
    model.eval()
    scores = {}
    with torch.no_grad():
        for clips, labels, indices in loader:
            with autocast:
                logits = model(normalise(clips, context.device))["logits"]
            for i, label, row in zip(indices.tolist(), labels.tolist(), logits.float().cpu().numpy()):
                scores[i] = (label, row)
    merged = {}
    for part in all_gather(scores, context):
        merged.update(part)
    order = sorted(merged)
    return np.stack([merged[i][1] for i in order]), np.array([merged[i][0] for i in order])


def check_classes(trained, present, checkpoint_path, data):
    """A checkpoint predicts its own classes: the dataset must have exactly those."""
    if list(trained) != list(present):
        extra = sorted(set(present) - set(trained))[:3] or sorted(set(trained) - set(present))[:3]
        raise ValueError(f"{checkpoint_path} was trained on {len(trained)} classes, {data} has "
                         f"{len(present)} (differing: {', '.join(extra) or 'their order'}); "
                         "evaluate on the dataset it was trained for")


def evaluate_checkpoint(checkpoint_path, data, list_path=None, list_format="auto", split=1,
                        num_segments=25, input_size=224, crops=1, batch_size=4, workers=4,
                        device="auto", confusion_path=None):
    """Accuracy of a checkpoint on a list of videos (default: all of the dataset): the report
    on rank 0, None on the other ranks (which help to compute it)."""
    saved = checkpoint.load(checkpoint_path)
    config = TrainConfig.from_dict(saved["config"])
    index = load_index(data)
    check_classes(saved["classes"], index["classes"], checkpoint_path, data)
    entries = (read_list(list_path, index, "test", list_format, split) if list_path else
               [(v["id"], v["label"]) for v in index["videos"]])
    context = setup(device)
    model = build_model(config.model, len(index["classes"]))
    model.load_state_dict(saved["model"])
    model.to(context.device)
    dataset = ClipDataset(data, entries, model.modalities, num_segments, input_size, train=False,
                          crops=crops)
    loader = make_loader(dataset, batch_size, workers, context.rank, context.world_size,
                         train=False, pin_memory=context.device.type == "cuda")
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if context.device.type == "cuda"
                else nullcontext())
    start = time.perf_counter()
    logits, labels = predict(model, loader, context, autocast)
    if not context.is_main:
        return None
    report = accuracy_report(logits, labels, index["classes"])
    report["videos_per_s"] = len(labels) / (time.perf_counter() - start)
    report["protocol"] = {"num_segments": num_segments, "input_size": input_size, "crops": crops,
                          "model": config.model.model}
    if confusion_path:
        save_confusion_image(report["confusion"], index["classes"], confusion_path)
        report["confusion_image"] = str(Path(confusion_path))
    return report
