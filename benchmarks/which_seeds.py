"""How TEAM-Net does on the "which" set seed by seed, against the ceiling of every additive
fusion on the same test videos: what tests/test_fusion.py may assert without a lucky seed.

    python benchmarks/which_seeds.py [--seeds 5] [--crop-scales 1] [--epochs 20 --lr-steps 15]
        [--model-options "--team-positions none"]

The set and the runs are the test's (tests/motion_dataset.py "which", 16 training and 8 test
videos a class, the test videos in balanced quartets; benchmarks/motion_runs.py), TEAM-Net
c->s unless --model-options say otherwise. A model whose decision is a sum of an I-frame term
and a motion term (late fusion, CoViAR, TEAM-Net without TEAM) can be right on at most 3 of
every 4 equally likely cases (docs/REPRESENTATION.md section 10): motion_dataset.additive_ceiling
gives its exact best on the test videos (0.75 on balanced quartets). Prints a Markdown table
and one JSON object.
"""
import argparse
import json
import shlex
import tempfile
from pathlib import Path

import numpy as np

from motion_runs import BASE, motion_dataset, test, train


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--crop-scales", default="1")
    parser.add_argument("--epochs", default="20")
    parser.add_argument("--lr-steps", default="15")
    parser.add_argument("--model-options", type=shlex.split, default=[])
    args = parser.parse_args()
    options = ["--crop-scales", args.crop_scales, "--epochs", args.epochs, "--lr-steps",
               args.lr_steps, "--val-fraction", "0", *args.model_options]
    name = "TEAM-Net c->s" + (f" {' '.join(args.model_options)}" if args.model_options else "")
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "set"
        data, train_list, test_list = motion_dataset.build(root, "which", per_class_train=16,
                                                           per_class_test=8)
        truth = json.loads((root / "which.json").read_text())
        videos = [line.removesuffix(".mp4") for line in test_list.read_text().split()]
        ceiling = motion_dataset.additive_ceiling(truth, videos)
        scores = []
        for seed in range(args.seeds):
            train(data, train_list, Path(work) / f"run{seed}", *options, "--seed", str(seed))
            scores.append(test(Path(work) / f"run{seed}", test_list)["top1"])
            print(f"{name}, seed {seed}: top-1 {scores[-1]:.3f}", flush=True)
    print(f"\n| {name}, crop scales {args.crop_scales} | top-1 |\n|---|---|")
    for seed, score in enumerate(scores):
        print(f"| seed {seed} | {score:.3f} |")
    print(f"| mean +- std | {np.mean(scores):.3f} +- {np.std(scores):.3f} |")
    print(f"| lowest | {min(scores):.3f} |")
    print(f"| additive fusion's ceiling on these test videos | {ceiling:.3f} |")
    print(json.dumps({"base": BASE + options, "top1": scores, "additive_ceiling": ceiling}))


if __name__ == "__main__":
    main()
