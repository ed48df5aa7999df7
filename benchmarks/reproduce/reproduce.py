"""One command per published number: the paper's Table 1 and pytorch-coviar's own table, from
the datasets' official downloads to the figure (docs/REPRODUCE.md says what each one takes).

    python benchmarks/reproduce/reproduce.py coviar-ucf101-mv --videos UCF-101/ \\
        --lists ucfTrainTestlist/ --work work/ [--splits 1 2 3] [--gpus 8] [--dry-run]

Every step is a `teamnet` command (encode, extract, train, evaluate, fuse), run in turn; each
resumes or skips what an earlier run of it finished, so a stopped reproduction is continued by
running the same line again. The figure (each split's top-1 and their mean) is printed and
written to WORK/FIGURE.json beside the published number and its source. --dry-run prints the
commands instead. --train-options and --test-options add options to every train and evaluate
(a quick try on a few videos: `--train-options "--epochs 1 --input-size 112"`).
"""
import argparse
import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = {"ucf101": (1, 2, 3), "hmdb51": (1, 2, 3), "kinetics400": (1,)}
# the official CoViAR test: 25 segments, 10 crops of the squashed frame, its frame rule
COVIAR_TEST = ["--view", "coviar", "--crops", "10", "--num-segments", "25"]
# the paper's (section 4.1): 25 segments, the centre crop
PAPER_TEST = ["--num-segments", "25", "--crops", "1"]
KINETICS = ["--epochs", "50", "--lr", "0.01", "--lr-steps", "30 40 45", "--batch-size", "80",
            "--num-segments", "8"]
FINE_TUNE = ["--epochs", "30", "--lr", "0.005", "--lr-steps", "15 20 25", "--batch-size", "80",
             "--num-segments", "8"]
TSN = ["--model", "tsn", "--modality", "rgb", "--iframe-arch", "resnet50"]
TEAMNET = ["--model", "teamnet"]


@dataclass
class Model:
    """One trained model of a figure: its name, train and evaluation options, and the figure
    whose Kinetics model it is fine-tuned from (None: from ImageNet)."""
    name: str
    train: list
    test: list
    fine_tunes: str = None
    int16: bool = False  # RGB frames rebuilt from the shards need --storage int16


@dataclass
class Figure:
    dataset: str
    models: list  # fused with weights (one model: the figure is its own)
    expected: float  # top-1, %, as published
    source: str
    gpu_hours: str  # an estimate: docs/REPRODUCE.md says how it is made
    weights: list = field(default_factory=list)


def coviar_branch(recipe, modality, arch=None, more=()):
    """A model of the official CoViAR runs (--recipe coviar-DATASET sets its rate, epochs,
    steps, batch, 3 segments, ResNet-152 and its augmentation), tested as its test.py; arch
    and more: what the paper's CoViAR changed."""
    options = ["--model", "tsn", "--modality", modality, "--recipe", recipe]
    return Model(f"coviar-{modality}", options + (["--iframe-arch", arch] if arch else [])
                 + list(more), COVIAR_TEST)


def _coviar_figures():
    figures = {}
    published = {"ucf101": {"iframe": 87.0, "mv": 70.0, "residual": 80.0, "fused": 90.5},
                 "hmdb51": {"iframe": 52.0, "mv": 40.0, "residual": 43.0, "fused": 59.2}}
    hours = {"ucf101": {"iframe": "3.6", "mv": "0.6", "residual": "0.6"},
             "hmdb51": {"iframe": "0.6", "mv": "0.15", "residual": "0.12"}}
    for dataset, numbers in published.items():
        source = f"pytorch-coviar README, {dataset}, mean of 3 splits"
        for modality in ("iframe", "mv", "residual"):
            figures[f"coviar-{dataset}-{modality}"] = Figure(
                dataset, [coviar_branch(f"coviar-{dataset}", modality)], numbers[modality],
                source, f"{hours[dataset][modality]} a split")
        figures[f"coviar-{dataset}"] = Figure(
            dataset, [coviar_branch(f"coviar-{dataset}", m) for m in ("iframe", "mv", "residual")],
            numbers["fused"], source + " (2:1:1 of the three)",
            f"{sum(float(h) for h in hours[dataset].values()):g} a split", [2, 1, 1])
    return figures


def _table1_figures():
    figures = {}
    published = {"tsn": (70.0, 89.7, 66.8), "coviar": (69.1, 91.0, 73.2),
                 "teamnet": (72.2, 94.3, 73.8)}
    kinetics_models = {"tsn": Model("tsn", TSN + KINETICS, PAPER_TEST, int16=True),
                       "teamnet": Model("teamnet", TEAMNET + KINETICS, PAPER_TEST)}
    hours = {"tsn": ("7.4", "0.2", "0.07"), "coviar": ("14", "6.4", "1.3"),
             "teamnet": ("14", "0.4", "0.14")}
    for name, numbers in published.items():
        for dataset, expected, gpu in zip(("kinetics400", "ucf101", "hmdb51"), numbers,
                                          hours[name]):
            source = "TEAM-Net paper, Table 1" + ("" if dataset == "kinetics400" else
                                                  ", mean of 3 splits")
            if name == "coviar":  # the official code with a ResNet-50 I-frame network, T = 8
                # Kinetics has no official CoViAR run: its rates, the paper's schedule
                recipe, more = ((f"coviar-{dataset}", ["--num-segments", "8"])
                                if dataset != "kinetics400" else
                                ("coviar", [o for o in KINETICS if o not in ("--lr", "0.01")]))
                models = [coviar_branch(recipe, m, "resnet50", more)
                          for m in ("iframe", "mv", "residual")]
                figures[f"table1-coviar-{dataset}"] = Figure(dataset, models, expected, source,
                                                             f"{gpu} a split", [2, 1, 1])
                continue
            kinetics = kinetics_models[name]
            model = kinetics if dataset == "kinetics400" else Model(
                name, kinetics.train[:len(kinetics.train) - len(KINETICS)] + FINE_TUNE,
                PAPER_TEST, f"table1-{name}-kinetics400", kinetics.int16)
            figures[f"table1-{name}-{dataset}"] = Figure(
                dataset, [model], expected, source,
                f"{gpu}" + ("" if dataset == "kinetics400" else " a split, after Kinetics"))
    return figures


FIGURES = {**_coviar_figures(), **_table1_figures()}


class Steps:
    """The commands of a figure, in order, with the paths they share."""

    def __init__(self, args, figure):
        self.args, self.figure, self.work = args, figure, Path(args.work)
        self.teamnet = shutil.which("teamnet") or str(Path(sys.executable).parent / "teamnet")

    def data(self, int16):
        return self.work / (f"{self.figure.dataset}-data" + ("-int16" if int16 else ""))

    def prepare(self):
        """encode, then extract once for each storage the figure's models need."""
        encoded = self.work / f"{self.figure.dataset}-encoded"
        short = ["--short-side", "256"] if self.figure.dataset == "kinetics400" else []
        yield ["encode", self.args.videos, encoded, *short, "--workers", self.args.workers]
        labels = [o for csv in self.kinetics_csvs() for o in ("--labels", csv)]
        for int16 in sorted({model.int16 for model in self.figure.models}):
            yield ["extract", encoded, self.data(int16), "--workers", self.args.workers,
                   *labels, *(["--storage", "int16"] if int16 else [])]

    def kinetics_csvs(self):
        if self.figure.dataset != "kinetics400":
            return []
        lists = Path(self.args.lists)
        validation = next((lists / n for n in ("val.csv", "validate.csv")
                           if (lists / n).exists()), lists / "val.csv")
        return [lists / "train.csv", validation]

    def lists(self, split):
        """(train list options, test list options) of a split."""
        lists, dataset = Path(self.args.lists), self.figure.dataset
        if dataset == "ucf101":
            return (["--train-list", lists / f"trainlist0{split}.txt"],
                    ["--list", lists / f"testlist0{split}.txt"])
        if dataset == "hmdb51":
            return (["--train-list", lists, "--split", split], ["--list", lists, "--split", split])
        train, validation = self.kinetics_csvs()
        return ["--train-list", train], ["--list", validation]

    def run_folder(self, model, split):
        return self.work / "runs" / f"{self.args.figure}-{model.name}-split{split}"

    def train(self, model, split):
        train_list, _ = self.lists(split)
        init = []
        if model.fine_tunes:
            if not self.args.kinetics_checkpoint:
                sys.exit(f"{self.args.figure} fine-tunes a Kinetics model: reproduce "
                         f"{model.fine_tunes} first and give its best.pt with "
                         "--kinetics-checkpoint")
            init = ["--init-from", self.args.kinetics_checkpoint]
        output = self.run_folder(model, split)
        resume = ["--resume"] if (output / "last.pt").exists() else []
        yield ["train", "--data", self.data(model.int16), *train_list, "--val-fraction", "0",
               "--output", output, *model.train, *init, *self.args.train_options, *resume]

    def scores(self, model, split):
        return self.work / "scores" / f"{self.run_folder(model, split).name}.npz"

    def evaluate(self, model, split):
        _, test_list = self.lists(split)
        yield ["evaluate", "--checkpoint", self.run_folder(model, split) / "best.pt",
               "--data", self.data(model.int16), *test_list, *model.test,
               "--scores", self.scores(model, split), "--confusion", "none",
               *self.args.test_options]

    def all(self):
        yield from self.prepare()
        for split in self.args.splits:
            for model in self.figure.models:
                yield from self.train(model, split)
                yield from self.evaluate(model, split)
        files = [self.scores(m, s) for s in self.args.splits for m in self.figure.models]
        weights = self.figure.weights or [1]
        yield ["fuse", *files, "--weights", ",".join(map(str, weights)), "--json"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("figure", choices=sorted(FIGURES))
    parser.add_argument("--videos", required=True, help="The dataset's videos as downloaded.")
    parser.add_argument("--lists", required=True, help="Its official split or annotation "
                        "folder: ucfTrainTestlist/, testTrainMulti_7030_splits/, or the "
                        "folder of Kinetics' train.csv and val.csv (validate.csv).")
    parser.add_argument("--work", required=True, help="Where data, runs and scores go.")
    parser.add_argument("--splits", type=int, nargs="+", default=None)
    parser.add_argument("--workers", default="16", help="encode and extract processes")
    parser.add_argument("--gpus", type=int, default=1, help="torchrun ranks for train")
    parser.add_argument("--kinetics-checkpoint", help="For UCF-101 and HMDB-51 figures of "
                        "Table 1: best.pt of the same model's Kinetics figure.")
    parser.add_argument("--train-options", type=shlex.split, default=[])
    parser.add_argument("--test-options", type=shlex.split, default=[])
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    figure = FIGURES[args.figure]
    args.splits = args.splits or SPLITS[figure.dataset]
    steps = Steps(args, figure)
    print(f"{args.figure}: published {figure.expected:.1f}% ({figure.source}); about "
          f"{figure.gpu_hours} H200 GPU-hour(s), estimated (docs/REPRODUCE.md)", flush=True)
    output = None
    for step in steps.all():
        command = [steps.teamnet, *map(str, step)]
        if step[0] == "train" and args.gpus > 1:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc_per_node", str(args.gpus), "--no-python", *command]
        print("$ " + shlex.join(command), flush=True)
        if args.dry_run:
            continue
        done = subprocess.run(command, stdout=subprocess.PIPE if step[0] == "fuse" else None,
                              text=True)
        if done.returncode != 0:
            sys.exit(f"{args.figure}: `teamnet {step[0]}` failed (exit status "
                     f"{done.returncode}); fix what it says and run the same line again")
        output = done.stdout
    if args.dry_run:
        return
    fused = json.loads(output.strip().splitlines()[-1])
    result = {"figure": args.figure, "top1": [g["report"]["top1"] for g in fused["groups"]],
              "mean_top1": fused["mean"]["top1"], "expected_top1": figure.expected / 100,
              "source": figure.source, "splits": args.splits,
              "train_options": args.train_options, "test_options": args.test_options}
    Path(args.work, f"{args.figure}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.figure}: top-1 {result['mean_top1']:.2%} over split(s) "
          f"{', '.join(map(str, args.splits))}; published {figure.expected:.1f}% "
          f"({figure.source})")


if __name__ == "__main__":
    main()
