"""Datasets whose classes differ only in motion, built through the real pipeline.

Every video has an appearance of its own (random textures) and a random start, so one frame
says nothing about the class: only motion does. Three sets:
- "pan": the whole frame pans; classes still, up, down, sideways (left or right at random).
- "patch": a small textured patch moves over a static textured background, wrapping around
  the edges (local motion, as in action videos); the same classes. Horizontal flips, which
  negate MV x, leave every class as it is: train with flips.
- "direction": the patch moves right, left, down or up. A flip turns right into left: train
  with `--flip off` (or `--flip-pairs` with the pair right,left).
- "which": which of two coloured quadrants moves, and along which axis
  (synthetic.tinted_quadrants): warm or cool, sideways or up-down. The MVs and residuals are
  blind to the colour (the same for twins that swap the colours), one frame shows no motion:
  branches trained apart and fused late reach 0.5 at best (I-frames say nothing, MVs the
  axis), any sum of an I-frame term and a motion term 0.75 (docs/REPRESENTATION.md section
  10); only matching motion and colour at the same place reaches 1. Train it with crops
  that keep a part of every quadrant: `--crop-scales "1 .875 .75"` (the test) or 1 (the
  whole frame; benchmarks/ablation.py), not the default's .66.
"""
import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np

import synthetic
from preprocess.encode import encode_dataset
from preprocess.extract import extract_dataset
from preprocess.settings import EncodeSettings, ExtractSettings, ParallelSettings

CLASSES = {
    "pan": {"still": (0, 0), "up": (0, -3), "down": (0, 3), "sideways": (3, 0)},
    "patch": {"still": (0, 0), "up": (0, -3), "down": (0, 3), "sideways": (3, 0)},
    "direction": {"right": (3, 0), "left": (-3, 0), "down": (0, 3), "up": (0, -3)},
    # (moving quadrant: 0 the warm one, 1 the cool one; axis: 0 x, 1 y)
    "which": {"warm-sideways": (0, 0), "warm-updown": (0, 1), "cool-sideways": (1, 0),
              "cool-updown": (1, 1)},
}
PATCH = 3 / 8  # side of the moving patch, relative to the frame's (24 px of 64)


def build(root, kind="pan", per_class_train=12, per_class_test=6, frames=48, size=64, seed=0,
          p_stride=1, storage="int8"):
    """Returns (extracted folder, train list, test list) under root. The patch sets also write
    root/boxes.json: {video id: [[x0, y0] of the patch's corner in each frame]} (its side is
    PATCH x size); the "which" set root/which.json: {video id: {"warm", "cool", "moving":
    quadrant 0-3 row by row, "axis": 0 x or 1 y}}."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    train, test, boxes = [], [], {}
    for name, (dx, dy) in CLASSES[kind].items():
        for n in range(per_class_train + per_class_test):
            video = f"{name}/{name}{n:02d}"
            speed = 1 + rng.integers(-1, 2) / 3  # speed varies a little
            sign = rng.choice([-1, 1]) if name == "sideways" else 1
            dx_, dy_ = round(sign * dx * speed), round(dy * speed)
            appearance = int(rng.integers(1 << 30))
            if kind == "which":
                tinted = tuple(int(q) for q in rng.choice(4, 2, replace=False))
                if n >= per_class_train:  # the test videos: in balanced quartets
                    tinted = balanced_places(n - per_class_train, dy)
                planes = synthetic.tinted_quadrants(frames, size, tinted, dx, dy,
                                                    int(rng.integers(1, 3)), appearance)
                boxes[video] = {"warm": tinted[0], "cool": tinted[1], "moving": tinted[dx],
                                "axis": dy}
                synthetic.write_yuv_video(_mkdir(root / "raw" / name) / f"{name}{n:02d}.mkv",
                                          *planes)
                (train if n < per_class_train else test).append(video)
                continue
            if kind == "pan":
                clip = synthetic.pan(frames, size, size, dx_, dy_, seed=appearance)
            else:
                start = tuple(int(v) for v in rng.integers(0, size, 2))
                clip, boxes[video] = synthetic.moving_square(
                    frames, size, size, dx_, dy_, size=round(size * PATCH), start=start,
                    seed=appearance)
            synthetic.write_video(_mkdir(root / "raw" / name) / f"{name}{n:02d}.mkv", clip)
            (train if n < per_class_train else test).append(video)
    parallel = ParallelSettings(workers=2)
    encode_dataset(root / "raw", root / "encoded", EncodeSettings(size=(size, size)), parallel)
    extract_dataset(root / "encoded", root / "data",
                    ExtractSettings(shard_size=16, p_stride=p_stride, storage=storage), parallel)
    (root / ("which.json" if kind == "which" else "boxes.json")).write_text(json.dumps(boxes))
    for name, videos in (("train.txt", train), ("test.txt", test)):
        (root / name).write_text("".join(f"{v}.mp4\n" for v in videos))
    return root / "data", root / "train.txt", root / "test.txt"


# pairs of quadrants, and the four of them each axis's test videos take (two axes, six pairs)
PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


def balanced_places(k, axis):
    """(warm, cool) quadrants of the k-th test video of a "which" class of that axis. Test
    videos come in quartets: one pair of places, each colour at each place, each colour moving
    (k and k + 1 of the warm class and of the cool class), so that every sum of an I-frame and
    a motion term is wrong on at least one of every four (docs/REPRESENTATION.md section 10):
    on this test set, exactly, its ceiling is 0.75."""
    first, second = PAIRS[axis * 2 + k // 2 % 4]
    return (first, second) if k % 2 == 0 else (second, first)


def additive_ceiling(truth, videos):
    """The best top-1 on videos of any rule argmax_k a_k(I-frame) + b_k(motion) whose terms
    see what their inputs show: the warm and cool quadrants (a), the moving quadrant and its
    axis (b). For a pair of colour places, a video of each mover is right only if b favours
    the warm place over the cool one; b is one function of the place, so per axis it orders
    the four places, and swapped pairs cannot both be right (truth: motion_dataset's
    which.json)."""
    cases = Counter((truth[v]["axis"], truth[v]["warm"], truth[v]["cool"],
                     truth[v]["moving"] == truth[v]["warm"]) for v in videos)
    right = 0
    for axis in (0, 1):
        best = 0
        for order in itertools.permutations(range(4)):  # b's preference among the places
            rank = {place: k for k, place in enumerate(order)}
            best = max(best, sum(
                cases[axis, w, c, True] + cases[axis, w, c, False] if rank[w] > rank[c] else
                max(cases[axis, w, c, True], cases[axis, w, c, False])
                for w, c in itertools.permutations(range(4), 2)))
        right += best
    return right / len(videos)


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path
