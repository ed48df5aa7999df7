"""Class activation maps (Zhou et al. 2016) of every branch, exact for these models.

A branch's logit for class k on one segment is its classifier applied to the spatial mean of
its last feature map: w_k . mean_xy f(x, y) + b_k = mean_xy (w_k . f(x, y)) + b_k. So the map
w_k . f(x, y), times the branch's fusion weight, is exactly where the branch's share of the
fused score comes from; TEAM-Net, CoViAR and TSN all sum their branches' logits.
"""
from pathlib import Path

import torch

from preprocess.errors import SettingsError

from .pictures import PictureError, cam_grid
from .transforms import normalise


def check_cam_class(cam_class, classes, where):
    """Refuse a --cam-class that is not one of classes (those of `where`), before any work."""
    if cam_class is not None and cam_class not in classes:
        raise SettingsError(f"--cam-class {cam_class!r} is not a class of {where}; its "
                            f"classes: {', '.join(classes[:10])}"
                            f"{', ...' if len(classes) > 10 else ''}")


@torch.no_grad()
def class_maps(model, clips, context, labels=None):
    """For a batch of clips {modality: (N, T, H, W, C)} of one crop: (probabilities (N, K),
    labels (N,), {modality: maps (N, T, h, w)}), the maps of class labels[n] (default: the
    predicted class)."""
    model.eval()
    with context.autocast():
        output = model(normalise(clips, context.device), maps=True)
    probabilities = output["logits"].float().softmax(dim=1)
    if labels is None:
        labels = probabilities.argmax(dim=1)
    labels = torch.as_tensor(labels, device=probabilities.device)
    maps = {}
    for modality, features in output["maps"].items():
        n, segments = len(labels), features.shape[0] // len(labels)
        weights = model.heads[modality].fc.weight[labels].float()  # (N, C)
        features = features.float().reshape(n, segments, *features.shape[1:])
        maps[modality] = model.fusion_weights[modality] * torch.einsum(
            "nc,ntchw->nthw", weights, features)
    return probabilities.cpu(), labels.cpu(), {m: x.cpu() for m, x in maps.items()}


def first_crop(clips, crops):
    """The first (centre) crop's segments of clips that hold `crops` crops along T."""
    return {m: x[:, :x.shape[1] // crops] for m, x in clips.items()}


def dataset_clips(dataset, names):
    """(name, clip, gops) of every item of an evaluation ClipDataset (names[i]: item i's):
    what write_cam_pictures draws."""
    for i, name in enumerate(names):
        clip, _, _ = dataset[(0, i)]
        gops, _ = dataset.clip_positions(i, dataset.test_rng(0, i))  # the first clip's
        yield name, clip, gops


def write_cam_pictures(model, clips, crops, context, classes, folder, cam_class=None):
    """One CAM grid PNG per (name, clip {modality: (T x crops, S, S, C)}, gops (T,)) of
    clips, named after the video; returns (paths written, [message] of those that could not
    be). cam_class: a class name, or None for the predicted."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return [], [f"could not write pictures into {folder}: {error.strerror or error}"]
    label = None if cam_class is None else [classes.index(cam_class)]
    written, problems = [], []
    for name, clip, gops in clips:
        clip = first_crop({m: x[None] for m, x in clip.items()}, crops)
        probabilities, labels, maps = class_maps(model, clip, context, label)
        k = int(labels[0])
        title = f"{name}: {classes[k]} ({float(probabilities[0, k]):.1%})"
        path = folder / (name.replace("/", "__") + ".png")
        try:
            cam_grid({m: x[0].numpy() for m, x in clip.items()},
                     {m: x[0].numpy() for m, x in maps.items()}, title, path, gops)
        except PictureError as error:
            problems.append(str(error))
            continue
        written.append(path)
    return written, problems
