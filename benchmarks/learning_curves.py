"""Learning curves on the tests' moving-patch sets: validation top-1 per epoch of TEAM-Net,
CoViAR and the I-frame TSN, and their test top-1, as a PNG and JSON.

    python benchmarks/learning_curves.py --out docs/figures/learning_curves.png

(about 11 minutes on 2 CPU cores; --replot draws the PNG again from the JSON beside it).

Two sets (tests/motion_dataset.py), 64 training videos (16 a class, a quarter held out for
validation) and 24 test videos each:
- patch: still, up, down, sideways; trained with flips;
- direction: right, left, down, up; trained with `--flip off`, and TEAM-Net once more with
  flips on, to show what a flip does to direction classes.
Runs as benchmarks/motion_runs.py's small models, --epochs with the lr divided at --lr-steps.
"""
import argparse
import json
import tempfile
from pathlib import Path

from motion_runs import motion_dataset, test, train
from teamnet.pictures import pyplot, save_png

MODELS = {"TEAM-Net": ["--model", "teamnet"], "CoViAR": ["--model", "coviar"],
          "TSN (I-frames)": ["--model", "tsn"]}
SETS = {"patch": MODELS,
        "direction": {**{name: options + ["--flip", "off"] for name, options in MODELS.items()},
                      "TEAM-Net, flips on": ["--model", "teamnet", "--flip", "on"]}}


def plot(curves, out):
    figure, axes = pyplot().subplots(1, len(curves), figsize=(5.5 * len(curves), 4), sharey=True)
    for axis, (name, runs) in zip(axes, curves.items()):
        for label, run in runs.items():
            axis.plot(range(1, len(run["val_top1"]) + 1), run["val_top1"], marker="o",
                      markersize=3, label=f"{label} (test {run['test_top1']:.2f})")
        axis.axhline(0.25, color="grey", linestyle=":", linewidth=1)  # chance, 4 classes
        axis.set(title=f"'{name}' set", xlabel="epoch", ylim=(0, 1.05))
        axis.legend(loc="upper left", fontsize=8)
    axes[0].set_ylabel("validation top-1")
    figure.tight_layout()
    save_png(figure, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("learning_curves.png"))
    parser.add_argument("--epochs", default="14")
    parser.add_argument("--lr-steps", default="10")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--replot", action="store_true",
                        help="Only draw --out again from the JSON beside it (no training).")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(args.out.with_suffix(".json").read_text())["curves"], args.out)
        return
    work = Path(tempfile.mkdtemp(prefix="teamnet-curves-"))
    curves = {}
    for name, runs in SETS.items():
        data, train_list, test_list = motion_dataset.build(work / name, name, per_class_train=16)
        for label, options in runs.items():
            run = work / name / label.replace(" ", "_").replace(",", "")
            metrics = train(data, train_list, run, "--epochs", args.epochs, "--lr-steps",
                            args.lr_steps, "--seed", args.seed, "--val-fraction", "0.25",
                            *options)
            report = test(run, test_list)
            curves.setdefault(name, {})[label] = {
                "val_top1": [m["val_top1"] for m in metrics], "test_top1": report["top1"],
                "per_class": report["per_class"]}
            print(f"{name}, {label}: test top-1 {report['top1']:.3f}, last validation "
                  f"{metrics[-1]['val_top1']:.3f}", flush=True)
    plot(curves, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"settings": {k: str(v) for k, v in vars(args).items()}, "curves": curves}, indent=1))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
