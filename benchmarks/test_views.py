"""Test top-1 of one checkpoint under each test view (`teamnet evaluate --view`): ours (TSN's
224/256 of the shorter side), the official TEAM-Net test's (the whole shorter side, at
256/224 of the input size) and the official CoViAR test's (squashed, the centre 7/8).

    python benchmarks/test_views.py [--set patch] [--seeds 2]

Each seed trains TEAM-Net on the tests' moving-patch set (benchmarks/motion_runs.py's small
CPU runs, 14 epochs, learning rate divided by 10 at 10) and evaluates it with every view
(4 segments, 1 crop). Prints a Markdown table and one JSON object.
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from motion_runs import invoke, motion_dataset, train

VIEWS = ("tsn", "team-net", "coviar")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="patch", choices=("patch", "direction", "which"))
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    scores = {view: [] for view in VIEWS}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        data, train_list, test_list = motion_dataset.build(work / "set", args.set)
        flip = ["--flip", "off"] if args.set == "direction" else []
        for seed in range(args.seeds):
            run = work / f"run{seed}"
            train(data, train_list, run, "--epochs", "14", "--lr-steps", "10", "--val-fraction",
                  "0", "--seed", str(seed), *flip)
            for view in VIEWS:
                output = invoke(["evaluate", "--checkpoint", run / "best.pt", "--list",
                                 test_list, "--num-segments", "4", "--workers", "0",
                                 "--view", view, "--json"])
                scores[view].append(json.loads(output.strip().splitlines()[-1])["top1"])
                print(f"seed {seed}, view {view}: top-1 {scores[view][-1]:.3f}", flush=True)
    print("\n| test view | top-1 (mean +- std) | per seed |\n|---|---|---|")
    for view, values in scores.items():
        print(f"| {view} | {np.mean(values):.3f} +- {np.std(values):.3f} | "
              f"{', '.join(f'{v:.3f}' for v in values)} |")
    print(json.dumps({"set": args.set, "top1": scores}))


if __name__ == "__main__":
    main()
