"""How TEAM-Net does on the "which" set seed by seed, against the ceiling of every additive
fusion on the same test videos: what tests/test_fusion.py may assert without a lucky seed.

    python benchmarks/which_seeds.py [--seeds 5] [--crop-scales 1] [--epochs 20 --lr-steps 15]

The set and the runs are the test's (tests/motion_dataset.py "which", 16 training and 8 test
videos a class; benchmarks/motion_runs.py). A model whose decision is a sum of an I-frame term
and a motion term (late fusion, CoViAR, TEAM-Net without TEAM) can be right on at most 3 of
every 4 equally likely cases (docs/REPRESENTATION.md section 10); `additive_ceiling` gives its
exact best on the test videos drawn. Prints a Markdown table and one JSON object.
"""
import argparse
import itertools
import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from motion_runs import BASE, motion_dataset, test, train


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--crop-scales", default="1")
    parser.add_argument("--epochs", default="20")
    parser.add_argument("--lr-steps", default="15")
    args = parser.parse_args()
    options = ["--crop-scales", args.crop_scales, "--epochs", args.epochs, "--lr-steps",
               args.lr_steps, "--val-fraction", "0"]
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "set"
        data, train_list, test_list = motion_dataset.build(root, "which", per_class_train=16,
                                                           per_class_test=8)
        truth = json.loads((root / "which.json").read_text())
        videos = [line.removesuffix(".mp4") for line in test_list.read_text().split()]
        ceiling = additive_ceiling(truth, videos)
        scores = []
        for seed in range(args.seeds):
            train(data, train_list, Path(work) / f"run{seed}", *options, "--seed", str(seed))
            scores.append(test(Path(work) / f"run{seed}", test_list)["top1"])
            print(f"TEAM-Net c->s, seed {seed}: top-1 {scores[-1]:.3f}", flush=True)
    print(f"\n| TEAM-Net c->s, crop scales {args.crop_scales} | top-1 |\n|---|---|")
    for seed, score in enumerate(scores):
        print(f"| seed {seed} | {score:.3f} |")
    print(f"| mean +- std | {np.mean(scores):.3f} +- {np.std(scores):.3f} |")
    print(f"| lowest | {min(scores):.3f} |")
    print(f"| additive fusion's ceiling on these test videos | {ceiling:.3f} |")
    print(json.dumps({"base": BASE + options, "top1": scores, "additive_ceiling": ceiling}))


if __name__ == "__main__":
    main()
