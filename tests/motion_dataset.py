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
  only a model that matches motion and colour at the same place can do better than 0.5
  (late fusion: I-frames say nothing; MVs say the axis, not the colour). Train it with crops
  that keep a part of every quadrant: `--crop-scales "1 .875 .75"` (the test) or 1 (the
  whole frame; benchmarks/ablation.py), not the default's .66.
"""
import json
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


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path
