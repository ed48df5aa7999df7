"""Compare training options on the tests' motion set (classes that differ only in motion:
still, up, down, sideways; 48 training and 24 test videos of 64x64): top-1 per seed.

    python benchmarks/motion_options.py --epochs 6 --lr-steps 4 \
        --variant "plain:" --variant "head x5: --head-lr-mult 5" --seeds 0 1

Each variant is NAME: extra `teamnet train` options. Every run: 3x ResNet-18 TEAM-Net from
scratch (`--pretrained none`), T=4, 32x32, batch 8, no validation share; evaluation with 4
segments. A CPU-sized synthetic set: it shows whether an option helps learning here, not how
it does on UCF-101 or Kinetics.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
import motion_dataset  # noqa: E402
from cli import main  # noqa: E402

BASE = ["--pretrained", "none", "--iframe-arch", "resnet18", "--num-segments", "4",
        "--input-size", "32", "--batch-size", "8", "--val-fraction", "0", "--workers", "0"]


def invoke(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exit_code != 0:
        raise SystemExit(result.output)
    return result.output


def main_():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", required=True, metavar="NAME: OPTIONS")
    parser.add_argument("--seeds", nargs="+", default=["0", "1"])
    parser.add_argument("--epochs", default="6")
    parser.add_argument("--lr-steps", default="4")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="teamnet-motion-"))
    data, train_list, test_list = motion_dataset.build(work)
    results = {}
    for variant in args.variant:
        name, _, options = variant.partition(":")
        for seed in args.seeds:
            run = work / f"{name.strip().replace(' ', '_')}-{seed}"
            invoke(["train", "--data", data, "--train-list", train_list, "--output", run,
                    "--epochs", args.epochs, "--lr-steps", args.lr_steps, "--seed", seed,
                    *BASE, *options.split()])
            report = json.loads(invoke(["evaluate", "--checkpoint", run / "best.pt", "--list",
                                        test_list, "--num-segments", "4", "--json"])
                                .strip().splitlines()[-1])
            results.setdefault(name.strip(), []).append(report["top1"])
            print(f"{name.strip()}, seed {seed}: top-1 {report['top1']:.3f}", flush=True)
    for name, scores in results.items():
        print(f"{name}: mean top-1 {sum(scores) / len(scores):.3f} over seeds {args.seeds}")
    print(json.dumps({"settings": vars(args), "top1": results}))


if __name__ == "__main__":
    main_()
