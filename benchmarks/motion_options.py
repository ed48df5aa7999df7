"""Compare training options on one of the tests' motion sets (classes that differ only in
motion; 48 training and 24 test videos of 64x64; default: the whole-frame pans): top-1 per seed.

    python benchmarks/motion_options.py --epochs 6 --lr-steps 4 \
        --variant "plain:" --variant "head x5: --head-lr-mult 5" --seeds 0 1

Each variant is NAME: extra `teamnet train` options, added to benchmarks/motion_runs.py's
small TEAM-Net runs (no validation share).
"""
import argparse
import json
import tempfile
from pathlib import Path

from motion_runs import motion_dataset, test, train


def main_():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", required=True, metavar="NAME: OPTIONS")
    parser.add_argument("--set", choices=list(motion_dataset.CLASSES), default="pan")
    parser.add_argument("--p-stride", type=int, default=1, help="extract --p-stride of the set")
    parser.add_argument("--seeds", nargs="+", default=["0", "1"])
    parser.add_argument("--epochs", default="6")
    parser.add_argument("--lr-steps", default="4")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="teamnet-motion-"))
    data, train_list, test_list = motion_dataset.build(work, args.set, p_stride=args.p_stride)
    results = {}
    for variant in args.variant:
        name, _, options = variant.partition(":")
        for seed in args.seeds:
            run = work / f"{name.strip().replace(' ', '_')}-{seed}"
            train(data, train_list, run, "--epochs", args.epochs, "--lr-steps", args.lr_steps,
                  "--seed", seed, "--val-fraction", "0", *options.split())
            report = test(run, test_list)
            results.setdefault(name.strip(), []).append(report["top1"])
            print(f"{name.strip()}, seed {seed}: top-1 {report['top1']:.3f}", flush=True)
    for name, scores in results.items():
        print(f"{name}: mean top-1 {sum(scores) / len(scores):.3f} over seeds {args.seeds}")
    print(json.dumps({"settings": vars(args), "top1": results}))


if __name__ == "__main__":
    main_()
