"""Crops, flips and normalisation (docs/REPRESENTATION.md sections 5 and 7).

One crop window and one flip per clip, shared by all its segments and its three modalities,
so the inputs stay spatially aligned; a flip negates the MV x channel. Loader workers crop,
resize and flip (keeping integer dtypes: a quarter of float32's bytes to move); the device
normalises whole batches.
"""
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

SCALES = (1.0, 0.875, 0.75, 0.66)  # TSN's multi-scale crop, relative to the shorter side
# Evaluation: the shorter side resized to 256, then a 224 crop; at another input size S the
# same view (shorter side to S * 256 / 224, then an S crop): the crop is 224/256 of the side.
EVAL_CROP_FRACTION = 224 / 256
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MV_RANGE = 20.0  # pixels mapped onto the 8-bit range (reference)


@dataclass(frozen=True)
class Crop:
    x: int
    y: int
    width: int
    height: int
    flip: bool = False


def train_crop(height, width, rng):
    """TSN's multi-scale corner crop: side lengths from SCALES x the shorter side (aspect
    distorted by at most one step), placed at a corner or the centre; flip with p = 0.5."""
    base = min(height, width)
    sides = [int(base * scale) for scale in SCALES]
    pairs = [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= 1]
    crop_w, crop_h = pairs[rng.integers(len(pairs))]
    dx, dy = width - crop_w, height - crop_h
    x, y = [(0, 0), (dx, 0), (0, dy), (dx, dy), (dx // 2, dy // 2)][rng.integers(5)]
    return Crop(x, y, crop_w, crop_h, bool(rng.random() < 0.5))


def eval_crops(height, width, count=1):
    """Square crops of EVAL_CROP_FRACTION of the shorter side (resized to the input size
    afterwards, the same view as resizing first): the centre (1), left/centre/right along the
    longer side (3), or 4 corners and the centre plus their flips (10)."""
    side = round(min(height, width) * EVAL_CROP_FRACTION)
    dx, dy = width - side, height - side
    if count == 1:
        places = [(dx // 2, dy // 2)]
    elif count == 3:
        places = [(0, 0), (dx // 2, dy // 2), (dx, dy)]
    elif count == 10:
        places = [(0, 0), (dx, 0), (0, dy), (dx, dy), (dx // 2, dy // 2)]
    else:
        raise ValueError(f"{count} crops: choose 1, 3 or 10")
    crops = [Crop(x, y, side, side) for x, y in places]
    return crops + [Crop(c.x, c.y, c.width, c.height, True) for c in crops] if count == 10 else crops


def apply_crop(frames, crop, size, is_mv=False):
    """frames (T, H, W, C) integer array -> (T, C, size, size) tensor of the same dtype:
    crop, bilinear resize, flip (negating MV x), rounded back to integers."""
    window = frames[:, crop.y:crop.y + crop.height, crop.x:crop.x + crop.width]
    x = torch.from_numpy(np.ascontiguousarray(window)).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if crop.flip:
        x = x.flip(-1)
        if is_mv:
            x[:, 0] = -x[:, 0]
    info = np.iinfo(frames.dtype)
    return x.round_().clamp_(info.min, info.max).to(getattr(torch, frames.dtype.name))


def normalise(batch, device, non_blocking=True):
    """Move a batch of integer clips to the device as float network inputs (section 5)."""
    out = {}
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 1, 3, 1, 1)
    if "iframe" in batch:
        rgb = batch["iframe"].to(device, non_blocking=non_blocking).float() / 255
        out["iframe"] = (rgb - mean) / std
    if "mv" in batch:
        v = batch["mv"].to(device, non_blocking=non_blocking).float()
        u = (torch.trunc(v * (127.5 / MV_RANGE)) + 128).clamp_(0, 255)
        out["mv"] = u / 255 - 0.5
    if "residual" in batch:
        r = batch["residual"].to(device, non_blocking=non_blocking).float()
        u = (r + 128).clamp_(0, 255)
        out["residual"] = (u / 255 - 0.5) / std
    return out
