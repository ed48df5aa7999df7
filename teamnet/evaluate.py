"""Evaluation the way the paper reports it: 25 segments, centre crop, video score = mean of the
segments' scores; top-1, top-5, mean class accuracy, per-class accuracy, confusion matrix."""
import re
import time
from pathlib import Path

import numpy as np
import torch

from preprocess.atomic import NO_SPACE, is_disk_full
from preprocess.store import load_index

from . import checkpoint, scores
from .cam import check_cam_class, dataset_clips, write_cam_pictures
from .checkpoint import CheckpointError
from .compiled import compile_regions, recompiling
from .data import ClipDataset, make_loader, with_p_frames
from .distributed import all_gather, setup, use_cores
from .metrics import accuracy_report
from .pictures import PictureError, save_confusion_image
from .model import build_model
from .splits import SplitError, read_list, read_split_record
from .transforms import normalise


def clip_logits(model, clips, crops, context, branches=False):
    """Logits (N, K) of a batch whose clips hold `crops` crops one after another along T:
    each crop runs as a clip of its own (temporal shifts stay within its segments), and the
    crops' logits are averaged (the same as averaging every segment of every crop). With
    branches=True also each branch's: (logits, {modality: (N, K)})."""
    n = next(iter(clips.values())).shape[0]  # not len(): export keeps the batch size free
    clips = {m: x.reshape(n * crops, x.shape[1] // crops, *x.shape[2:]) for m, x in clips.items()}
    with context.autocast():
        output = model(normalise(clips, context.device))
    mean = lambda logits: logits.float().reshape(n, crops, -1).mean(dim=1)  # noqa: E731
    if not branches:
        return mean(output["logits"])
    return mean(output["logits"]), {m: mean(x) for m, x in output["branches"].items()}


def predict(model, loader, context, branches=False):
    """(logits (V, K), labels (V,)) for every video of the loader, gathered over ranks in
    dataset order; the padding the sampler adds for equal shares is dropped. Logits stay on
    the device until the end: one copy to the host, not one (and a wait) per batch. With
    branches=True a third item: {modality: (V, K)}, each branch's logits."""
    model.eval()
    indices, labels, logits = [], [], []
    with torch.no_grad():
        for clips, label, index in loader:
            fused, parts = clip_logits(model, clips, loader.dataset.views, context, True)
            logits.append(torch.stack([fused, *parts.values()], dim=1))  # (N, 1 + B, K)
            indices.append(index)
            labels.append(label)
    scores = dict(zip(torch.cat(indices).tolist(), zip(
        torch.cat(labels).tolist(), torch.cat(logits).cpu().numpy()))) if logits else {}
    merged = {}
    for part in all_gather(scores, context):  # every rank takes part, even with no batch
        merged.update(part)
    order = sorted(merged)
    every = (np.stack([merged[i][1] for i in order]) if order else
             np.zeros((0, 1 + len(model.modalities), model.num_classes), np.float32))
    found = every[:, 0], np.array([merged[i][0] for i in order], np.int64)
    if not branches:
        return found
    return (*found, {m: every[:, 1 + j] for j, m in enumerate(model.modalities)})


def check_classes(trained, present, checkpoint_path, data):
    """A checkpoint predicts its own classes: the dataset must have exactly those."""
    if list(trained) != list(present):
        extra = sorted(set(present) - set(trained))[:3] or sorted(set(trained) - set(present))[:3]
        raise CheckpointError(f"{checkpoint_path} was trained on {len(trained)} classes, {data} has "
                         f"{len(present)} (differing: {', '.join(extra) or 'their order'}); "
                         "evaluate on the dataset it was trained for")


def data_differences(trained_on, data):
    """How a dataset's recorded settings differ from those a checkpoint was trained on, in
    what the network sees (encoding and P-frame stride; storage and compression are
    lossless choices): ["p_stride 1 -> 4", "encode.size [340, 256] -> [64, 48]", ...]."""
    if not trained_on:
        return []
    seen = lambda settings: {"p_stride": settings.get("p_stride"),  # noqa: E731
                             **{f"encode.{key}": value for key, value in
                                (settings.get("encode") or {}).items() if key != "ffmpeg"}}
    before, now = seen(trained_on), seen(data)
    return [f"{key} {before.get(key)!r} -> {now.get(key)!r}" for key in sorted({*before, *now})
            if before.get(key) != now.get(key)]


def evaluated_videos(config, trained, index, say):
    """(entries, what they are in words, a short name for file names) of the videos to
    evaluate: --list; else --all-videos; else the run's test list (config.json); else the
    videos of the data the run did not train on (its split.json beside the checkpoint); else
    all of them, with a warning that the run trained on them."""
    read = lambda path, data: read_list(path, index, "test", data.list_format,  # noqa: E731
                                        data.split, say, config.missing,
                                        class_index=data.class_index)
    everything = [(v["id"], v["label"]) for v in index["videos"]]
    if config.list:
        return read(config.list, config), f"the list {config.list}", _list_name(
            config.list, config.split)
    if config.all_videos:
        return everything, f"every video of {config.data}", "all"
    test = trained.data.test_list
    if test:
        if not Path(test).exists():
            raise SplitError(f"{config.checkpoint}: its run's test list {test} is not there; "
                             "give --list (or --all-videos)")
        return read(test, trained.data), f"the run's test list {test}", _list_name(
            test, trained.data.split)
    split = Path(config.checkpoint).with_name("split.json")
    if split.is_file():
        seen = {video for part in read_split_record(split).values() for video, _ in part}
        untrained = [entry for entry in everything if entry[0] not in seen]
        if untrained:
            return (untrained, f"the {len(untrained)} video(s) of {config.data} in neither "
                    f"the training nor the validation set of the run ({split})", "untrained")
        why = (f"every video of {config.data} is in the training or validation set of the "
               f"run ({split})")
    else:
        why = f"no split.json beside {config.checkpoint} says which videos the run trained on"
    if say:
        say(f"warning: {why}: evaluating all of them, training videos included; give --list "
            "for a test set, or --all-videos to say you mean all")
    return everything, f"every video of {config.data} (training videos included)", "all"


def _list_name(path, split):
    """A list's name for file names: its file name, or a split folder's name and split."""
    path = Path(path)
    name = f"{path.name}-split{split}" if path.is_dir() else path.stem
    return re.sub(r"[^\w.-]+", "_", name)[:64]


def confusion_path(config, evaluated):
    """The confusion matrix's PNG beside the checkpoint, named after the checkpoint, the list
    and the protocol, so that evaluating another list (or otherwise) never replaces one."""
    checkpoint_path = Path(config.checkpoint)
    return checkpoint_path.with_name(
        f"confusion-{checkpoint_path.stem}-{evaluated}-{config.num_segments}seg-"
        f"{config.crops}crop-{config.input_size}px"
        + ("" if config.view == "tsn" else f"-{config.view}")
        + (f"-{config.clips}clip-seed{config.seed}" if config.view == "team-net" else "") + ".png")


def _write_scores(config, report, videos, labels, classes, logits):
    """The score file of --scores (teamnet/scores.py), with the protocol the report
    records; one that cannot be written goes to report["not_written"]."""
    try:
        scores.write(config.scores, videos, labels, classes, logits,
                     {"checkpoint": str(config.checkpoint), "evaluated": report["evaluated"],
                      **report["protocol"]})
        report["scores"] = str(config.scores)
    except OSError as error:
        report["not_written"].append(
            f"could not write the scores to {config.scores}: "
            f"{NO_SPACE if is_disk_full(error) else error.strerror or error}; the numbers "
            "above are whole: evaluate again with a writable --scores FILE")


def evaluate_checkpoint(config):
    """Accuracy of a checkpoint as an EvalConfig asks (settings left None: as trained): the
    report on rank 0, None on the other ranks (which help to compute it)."""
    saved = checkpoint.load(config.checkpoint)
    trained = checkpoint.trained_config(saved, config.checkpoint)
    config = config.resolved(trained)
    index = load_index(config.data)
    check_classes(saved["classes"], index["classes"], config.checkpoint, config.data)
    check_cam_class(config.cam_class, index["classes"], config.data)
    context = setup(config.device)
    use_cores(context)
    say = print if context.is_main else None
    entries, evaluated, name = evaluated_videos(config, trained, index, say)
    entries = with_p_frames(entries, index, trained.model.uses_p_frames(), say)
    model = build_model(trained.model, len(index["classes"]), initialise=False)
    checkpoint.load_model_state(model, saved["model"], config.checkpoint)
    model.to(context.device)
    if config.compile:
        compile_regions(model)
    dataset = _test_set(config, entries, model.modalities)
    per_rank = max(1, config.batch_size // context.world_size)
    loader = make_loader(dataset, per_rank, config.workers, context.rank,
                         context.world_size, train=False,
                         pin_memory=context.device.type == "cuda")
    start = time.perf_counter()
    logits, labels, branches = recompiling(
        lambda: predict(model, loader, context, branches=True))
    if not context.is_main:
        return None
    report = accuracy_report(logits, labels, index["classes"])
    report["videos_per_s"] = len(labels) / (time.perf_counter() - start)
    report["evaluated"] = evaluated
    report["protocol"] = {"num_segments": config.num_segments,
                          "input_size": dataset.output_size, "crops": config.crops,
                          "view": config.view, "model": trained.model.model,
                          **({"clips": config.clips, "seed": config.seed}
                             if config.view == "team-net" else {})}
    # files last, and never at the numbers' cost: one that cannot be written is a warning
    # (and, for the scores a user asked for, exit status 1: report["not_written"])
    report["warnings"], report["not_written"] = [], []
    if config.scores:
        _write_scores(config, report, [video for video, _ in entries], labels,
                      index["classes"], {"fused": logits, **branches})
    differ = data_differences(saved.get("data_settings"), index["settings"])
    if differ:
        report["warnings"].append(
            f"{config.data} was encoded or extracted otherwise than the data "
            f"{config.checkpoint} was trained on ({', '.join(differ)}): these numbers are not "
            "its accuracy on its own kind of data (`teamnet predict` re-encodes videos as "
            "the checkpoint's data were)")
    _pictures(config, report, index["classes"], name, entries, model, context)
    return report


def _test_set(config, entries, modalities):
    """The ClipDataset of the test protocol config gives."""
    return ClipDataset(config.data, entries, modalities, config.num_segments, config.input_size,
                       train=False, seed=config.seed, crops=config.crops, view=config.view,
                       clips=config.clips)


def _pictures(config, report, classes, name, entries, model, context):
    """The confusion matrix and, with --cam, the CAM pictures: a picture that cannot be
    written is a warning in the report."""
    confusion = config.confusion or confusion_path(config, name)
    if confusion != "none":
        try:
            save_confusion_image(report["confusion"], classes, confusion)
            report["confusion_image"] = str(confusion)
        except PictureError as error:
            report["warnings"].append(str(error))
    if config.cam:
        shown = entries[:config.cam_videos]
        dataset = _test_set(config, shown, model.modalities)
        written, problems = write_cam_pictures(
            model, dataset_clips(dataset, [video for video, _ in shown]), dataset.views,
            context, classes, config.cam, config.cam_class)
        report["cam_pictures"] = [str(path) for path in written]
        report["warnings"] += problems
