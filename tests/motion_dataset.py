"""A dataset whose classes differ only in motion direction, built through the real pipeline.

Every video pans a texture of its own (random appearance) from a random start, so one frame
says nothing about the class: only motion does. Classes: still, up, down, sideways (left or
right at random): horizontal flips, which negate MV x, must not change the class.
"""
from pathlib import Path

import numpy as np

import synthetic
from preprocess.encode import encode_dataset
from preprocess.extract import extract_dataset
from preprocess.settings import EncodeSettings, ExtractSettings, ParallelSettings

DIRECTIONS = {"still": (0, 0), "up": (0, -3), "down": (0, 3), "sideways": (3, 0)}


def build(root, per_class_train=12, per_class_test=6, frames=48, size=64, seed=0):
    """Returns (extracted folder, train list, test list) under root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for name, (dx, dy) in DIRECTIONS.items():
        for n in range(per_class_train + per_class_test):
            video = f"{name}/{name}{n:02d}"
            speed = 1 + rng.integers(-1, 2) / 3  # speed varies a little
            sign = rng.choice([-1, 1]) if name == "sideways" else 1
            clip = synthetic.pan(frames, size, size, round(sign * dx * speed), round(dy * speed),
                                 seed=int(rng.integers(1 << 30)))
            synthetic.write_video(_mkdir(root / "raw" / name) / f"{name}{n:02d}.mkv", clip)
            (train if n < per_class_train else test).append(video)
    parallel = ParallelSettings(workers=2)
    encode_dataset(root / "raw", root / "encoded", EncodeSettings(size=(size, size)), parallel)
    extract_dataset(root / "encoded", root / "data", ExtractSettings(shard_size=16), parallel)
    for name, videos in (("train.txt", train), ("test.txt", test)):
        (root / name).write_text("".join(f"{v}.mp4\n" for v in videos))
    return root / "data", root / "train.txt", root / "test.txt"


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path
