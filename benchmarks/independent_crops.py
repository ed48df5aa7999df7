"""What drawing crops and flips apart for each modality (as the reference did) costs TEAM-Net,
on the tests' "which" set, where motion and appearance must be matched at the same place.

    python benchmarks/independent_crops.py [--seeds 2] [--crop-scales "1 .875 .75"]

Each seed trains TEAM-Net (c->s; the tests' small CPU runs, benchmarks/motion_runs.py, 20
epochs, learning rate divided by 10 at 15) twice on the same videos and crop scales: with one
crop and flip for the clip (ours), and with one for each modality (a test-only variant of the
dataset, patched into training here), then tests both the same way (aligned centre crops).
Prints a Markdown table and one JSON object.
"""
import argparse
import json
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

from motion_runs import BASE, motion_dataset, test, train
from teamnet import train as training
from teamnet.data import ClipDataset


class IndependentCrops(ClipDataset):
    """The reference's augmentation: a crop and a flip drawn for each modality (what
    --augment coviar gives the branches of --model coviar; TEAM-Net's never, but here)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.apart = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--crop-scales", default="1 .875 .75")
    args = parser.parse_args()
    scores = {"one crop a clip": [], "a crop a modality": []}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        data, train_list, test_list = motion_dataset.build(
            work / "set", "which", per_class_train=16, per_class_test=8)
        options = ["--crop-scales", args.crop_scales, "--epochs", "20", "--lr-steps", "15",
                   "--val-fraction", "0"]
        for seed in range(args.seeds):
            for name, dataset in (("one crop a clip", ClipDataset),
                                  ("a crop a modality", IndependentCrops)):
                run = work / f"{len(scores[name])}-{seed}-{dataset.__name__}"
                with mock.patch.object(training, "ClipDataset", dataset):
                    train(data, train_list, run, *options, "--seed", str(seed))
                scores[name].append(test(run, test_list)["top1"])
                print(f"{name}, seed {seed}: top-1 {scores[name][-1]:.3f}", flush=True)
    print(f"\n| training crops (scales {args.crop_scales}) | top-1 (mean +- std) | seeds |")
    print("|---|---|---|")
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.3f} +- {np.std(values):.3f} | {len(values)} |")
    print(json.dumps({"base": BASE + options, "top1": scores}))


if __name__ == "__main__":
    main()
