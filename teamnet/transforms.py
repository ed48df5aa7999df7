"""Crops, flips and normalisation (docs/REPRESENTATION.md sections 5 and 7).

One crop window and one flip per clip, shared by all its segments and its three modalities,
so the inputs stay spatially aligned (the official CoViAR augmentation, which draws them for
each branch of a CoViAR model, is an option); a flip negates the MV x channel. Loader workers crop,
resize and flip (keeping integer dtypes: a quarter of float32's bytes to move); the device
normalises whole batches.
"""
import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .config import PIXELS

# TSN's multi-scale crop, sides relative to the shorter side: the reference's I-frame scales,
# and its MV and residual ones (docs/REPRESENTATION.md section 6)
SCALES = (1.0, 0.875, 0.75, 0.66)
P_FRAME_SCALES = (1.0, 0.875, 0.75)
# The reference's 13 crop places (TSN's "more fixed crops") in quarters of the free room:
# corners, centre, edge midpoints, and the centres of the four quarters
CROP_PLACES = ((0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0),
               (1, 1), (3, 1), (1, 3), (3, 3))
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


def default_scales(modalities):
    """The crop scales of a model's clips: one crop serves all its modalities (they stay
    aligned), so a model that reads I-frames takes the reference's I-frame scales, one that
    reads only MVs or residuals the reference's P-frame ones."""
    return SCALES if set(PIXELS) & set(modalities) else P_FRAME_SCALES


def train_crop(height, width, rng, flip=True, scales=SCALES, anywhere=False):
    """TSN's multi-scale crop, as the reference: width and height each scales[i] x the
    shorter side (aspect distorted by at most one step), at one of the 13 CROP_PLACES (or,
    anywhere=True, at any place: the official CoViAR code's fix_crop=False); flip with
    p = 0.5 (never with flip=False; the same random numbers are drawn either way)."""
    base = min(height, width)
    sides = [int(base * scale) for scale in scales]
    pairs = [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= 1]
    crop_w, crop_h = pairs[rng.integers(len(pairs))]
    if anywhere:
        x, y = (int(v) for v in rng.integers(0, (width - crop_w + 1, height - crop_h + 1)))
    else:
        i, j = CROP_PLACES[rng.integers(len(CROP_PLACES))]
        x, y = i * ((width - crop_w) // 4), j * ((height - crop_h) // 4)
    return Crop(x, y, crop_w, crop_h, bool(rng.random() < 0.5) and flip)


# The official CoViAR code's colour augmentation of I-frames (its transforms.color_aug): hue,
# lightness and saturation each moved by a uniform draw of up to these, a frame at a time
# (OpenCV's 8-bit HLS: 36 half-degrees of hue, 50 of 255 for the others)
HLS_JITTER = (72.0, 50 / 255, 50 / 255)


def jitter_colours(frames, rng):
    """(T, H, W, 3) uint8 RGB frames with their colours moved as the official CoViAR code
    moves its I-frames': in HLS, hue by up to 72 degrees either way, lightness and saturation
    by up to 50/255, one draw each a frame; each clipped to its range (hue at 0 and 360
    degrees, not wrapped round, as there), in floating point (OpenCV rounds each channel to 8
    bits on the way)."""
    shifts = rng.uniform(-1.0, 1.0, (len(frames), 3)) * HLS_JITTER
    hue, light, saturation = rgb_to_hls(frames.astype(np.float32) / 255)
    hue = np.clip(hue + shifts[:, 0, None, None], 0, 360)
    light = np.clip(light + shifts[:, 1, None, None], 0, 1)
    saturation = np.clip(saturation + shifts[:, 2, None, None], 0, 1)
    return np.rint(hls_to_rgb(hue, light, saturation) * 255).astype(np.uint8)


def rgb_to_hls(rgb):
    """(hue in degrees [0, 360), lightness, saturation in [0, 1]) of RGB in [0, 1] (..., 3)."""
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    light, spread = (high + low) / 2, high - low
    grey = spread == 0
    spread_or_1 = np.where(grey, 1, spread)
    saturation = np.where(grey, 0, spread_or_1 / np.where(light <= 0.5, high + low,
                                                          2 - high - low).clip(1e-12))
    r, g, b = np.moveaxis(rgb, -1, 0)
    hue = np.select([high == r, high == g], [(g - b) / spread_or_1, (b - r) / spread_or_1 + 2],
                    (r - g) / spread_or_1 + 4)
    return np.where(grey, 0, hue * 60 % 360), light, saturation


def hls_to_rgb(hue, light, saturation):
    """RGB in [0, 1] (..., 3) of hue in degrees, lightness and saturation in [0, 1]."""
    chroma = (1 - np.abs(2 * light - 1)) * saturation
    sector = hue / 60 % 6  # 360 degrees is red again
    middle = chroma * (1 - np.abs(sector % 2 - 1))
    zero = np.zeros_like(chroma)
    parts = [(chroma, middle, zero), (middle, chroma, zero), (zero, chroma, middle),
             (zero, middle, chroma), (middle, zero, chroma), (chroma, zero, middle)]
    which = np.minimum(sector.astype(np.int64), 5)
    rgb = np.stack([np.choose(which, [part[c] for part in parts]) for c in range(3)], axis=-1)
    return rgb + (light - chroma / 2)[..., None]


def eval_crops(height, width, count=1, view="tsn"):
    """The evaluation crops of a height x width frame, for the view of TEST_VIEWS:

    - "tsn" (ours): squares of EVAL_CROP_FRACTION of the shorter side (resized to the input
      size afterwards, the same view as resizing first): the centre (1), both ends and the
      centre of the longer side, centred on the shorter one (3: left, centre, right of a
      landscape frame), or 4 corners and the centre plus their flips (10);
    - "team-net" (the official TEAM-Net test): the same places with squares of the whole
      shorter side (the shorter side resized to 256 and a 256 crop; see view_size);
    - "coviar" (the official CoViAR test, 1 or 10 crops): the frame squashed to a square,
      224 crops of it at 256: rectangles of 224/256 of the width by 224/256 of the height,
      at the same places (the official 10 are the squashed frame's corners and centre, each
      flipped: transforms.GroupOverSample)."""
    if view == "coviar":
        if count == 3:
            raise ValueError("the CoViAR view has 1 or 10 crops")
        crop_w, crop_h = round(width * EVAL_CROP_FRACTION), round(height * EVAL_CROP_FRACTION)
    else:
        fraction = 1.0 if view == "team-net" else EVAL_CROP_FRACTION
        crop_w = crop_h = round(min(height, width) * fraction)
    dx, dy = width - crop_w, height - crop_h
    if count == 1:
        places = [(dx // 2, dy // 2)]
    elif count == 3:
        places = ([(0, dy // 2), (dx // 2, dy // 2), (dx, dy // 2)] if dx >= dy else
                  [(dx // 2, 0), (dx // 2, dy // 2), (dx // 2, dy)])
    elif count == 10:
        places = [(0, 0), (dx, 0), (0, dy), (dx, dy), (dx // 2, dy // 2)]
    else:
        raise ValueError(f"{count} crops: choose 1, 3 or 10")
    crops = [Crop(x, y, crop_w, crop_h) for x, y in places]
    return crops + [Crop(c.x, c.y, c.width, c.height, True) for c in crops] if count == 10 else crops


def view_size(view, input_size):
    """The side of the network input in evaluation: the training input size, or for the
    official TEAM-Net view 256/224 of it (a 256 input where training used 224)."""
    return round(input_size / EVAL_CROP_FRACTION) if view == "team-net" else input_size


def _resize(x, size):
    """Bilinear resize of (T, C, h, w) integer frames to size x size, rounded to integers.
    8-bit frames take torch's uint8 kernel (int8 ones moved by 128 into uint8 and back):
    within 1 of the float resize, several times cheaper; int16 frames go through float."""
    if x.shape[-2:] == (size, size):
        return x
    if x.dtype == torch.uint8:
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if x.dtype == torch.int8:  # flipping the sign bit maps int8 v onto uint8 v + 128, and back
        shifted = x.view(torch.uint8) ^ 128
        resized = F.interpolate(shifted, size=(size, size), mode="bilinear", align_corners=False)
        return (resized ^ 128).view(torch.int8)
    info = torch.iinfo(x.dtype)
    resized = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False)
    return resized.round_().clamp_(info.min, info.max).to(x.dtype)


def apply_crop(frames, crop, size, is_mv=False):
    """frames (T, H, W, C) integer array -> (T, C, size, size) tensor of the same dtype, its
    memory channels-last: crop, bilinear resize, flip (negating MV x, saturated to the
    dtype's range)."""
    window = frames[:, crop.y:crop.y + crop.height, crop.x:crop.x + crop.width]
    # (T, C, h, w) whose memory is channels-last, the layout torch's uint8 resize is fastest in
    x = _resize(torch.from_numpy(np.ascontiguousarray(window)).permute(0, 3, 1, 2), size)
    if crop.flip:
        x = x.flip(-1)
        if is_mv:
            info = torch.iinfo(x.dtype)
            x = x.clone()
            x[:, 0] = (-x[:, 0].to(torch.int32)).clamp_(info.min, info.max).to(x.dtype)
    return x


@functools.lru_cache(maxsize=8)
def _constants(device):
    """ImageNet mean and std on the device, made once: a tensor built from Python numbers
    per batch is a blocking host-to-device copy on a GPU."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 1, 3, 1, 1)
    return mean, torch.tensor(IMAGENET_STD, device=device).view(1, 1, 3, 1, 1)


def normalise(batch, device, non_blocking=True):
    """Move a batch of integer clips, {modality: (N, T, H, W, C)} as the loader makes them, to
    the device as float network inputs (N, T, C, H, W) (section 5). The pixels keep their
    channels-last memory all the way: no layout copy on the host, and the layout the GPU's
    convolutions prefer."""
    out = {}
    mean, std = _constants(torch.device(device))
    moved = {m: clips.to(device, non_blocking=non_blocking).permute(0, 1, 4, 2, 3).float()
             for m, clips in batch.items()}
    for pixels in PIXELS:
        if pixels in moved:
            out[pixels] = (moved[pixels] / 255 - mean) / std
    if "mv" in moved:
        u = (torch.trunc(moved["mv"] * (127.5 / MV_RANGE)) + 128).clamp_(0, 255)
        out["mv"] = u / 255 - 0.5
    if "residual" in moved:
        u = (moved["residual"] + 128).clamp_(0, 255)
        out["residual"] = (u / 255 - 0.5) / std
    return out
