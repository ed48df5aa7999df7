"""The paper's ablations as one command: TEAM arrangements (Table 3: c, s, c+s, s->c, c->s),
TEAM positions (Table 4) and the models of Table 1 (I-frame and MV TSN, CoViAR's late fusion,
TEAM-Net without TEAM, with c, s, c->s), each over several seeds, as Markdown tables and a
bar chart.

    python benchmarks/ablation.py --seeds 2 --out docs/figures/ablation      # motion set
    python benchmarks/ablation.py --set which --grids models --seeds 3 --out docs/figures/fusion
    python benchmarks/ablation.py --data DIR --train-list L --test-list T \\
        --train-options "--epochs 30 --lr-steps 20,25 --batch-size 32" --torchrun 8

Every run is `teamnet train` from one base: --train-options, plus for the arrangement grid
--team-arrangement A (at the default positions), for the position grid --team-positions P
(with c->s); then `teamnet evaluate` on --test-list. Without --data, the tests' moving-patch
set and benchmarks/motion_runs.py's small CPU runs are the base. --torchrun N runs each
training as `torchrun --nproc_per_node N` (DDP) instead of in this process.

Writes OUT.md (top-1 mean +- std over seeds, parameters, GFLOPs per clip of the base's T and
input size), OUT.png (bar chart) and OUT.json (every run's top-1, and the options they shared),
after each setting, so a stopped run loses at most one setting. --resume keeps the seeds OUT.json
already has and trains only the missing ones (say, --seeds 3 after a run of 2); it refuses an
OUT.json made with other options. The runs (and the synthetic set) go into a new folder (in
--work, or the system's temporary folder), removed at the end unless --keep.
Heavy modules are imported after the options are read, so that --help is immediate.
"""
import argparse
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ARRANGEMENTS = ("c", "s", "c+s", "s->c", "c->s")  # teamnet.config's, without importing it
DEFAULT_POSITIONS = ("stem", "res2", "res3", "res4")
POSITIONS = ["none", "stem", "stem res2", "stem res2 res3", "stem res2 res3 res4",
             "stem res2 res3 res4 res5"]
SETS = ("pan", "patch", "direction", "which")  # tests/motion_dataset.py's CLASSES
# Table 1's comparison: late fusion against TEAM-Net with and without TEAM's kinds of fusion.
# CoViAR trains with TEAM-Net's recipe here, so that only the fusion differs.
MODELS = {"I-frame TSN": ["--model", "tsn", "--modality", "iframe"],
          "MV TSN": ["--model", "tsn", "--modality", "mv"],
          "CoViAR (late fusion)": ["--model", "coviar", "--recipe", "teamnet"],
          "TEAM-Net, no TEAM": ["--team-positions", "none"],
          "TEAM-Net c": ["--team-arrangement", "c"],
          "TEAM-Net s": ["--team-arrangement", "s"],
          "TEAM-Net c->s": ["--team-arrangement", "c->s"]}
GRIDS = ("arrangement", "positions", "models")
SET_OPTIONS = {"which": ["--crop-scales", "1"]}  # its quadrants must stay in every crop


def option(args, name, default):
    """The value of a `teamnet train` option in an argument list, or default."""
    return args[args.index(name) + 1] if name in args else default


def cost(options, classes):
    """(parameters in millions, GFLOPs per clip) of the model the options describe."""
    from model_speed import gflops, random_clips
    from teamnet.config import ModelConfig
    from teamnet.model import build_model
    config = ModelConfig(
        model=option(options, "--model", "teamnet"), modality=option(options, "--modality",
                                                                     "iframe"),
        iframe_arch=option(options, "--iframe-arch", "resnet50"),
        pframe_arch=option(options, "--pframe-arch", "resnet18"), pretrained="none",
        team_positions=tuple(w for w in option(options, "--team-positions", " ".join(
            DEFAULT_POSITIONS)).split() if w != "none"),
        team_arrangement=option(options, "--team-arrangement", "c->s"))
    model = build_model(config, classes).eval()
    segments = int(option(options, "--num-segments", 8))
    size = int(option(options, "--input-size", 224))
    return (sum(p.numel() for p in model.parameters()) / 1e6,
            gflops(model, random_clips(1, segments, size, "cpu", False)))


def train_run(base, run, options, torchrun):
    """One training run into the folder run: in this process, or under torchrun (DDP)."""
    from motion_runs import train
    if not torchrun:
        train(base["data"], base["train_list"], run, *base["options"], *options)
        return
    teamnet = str(Path(sys.executable).with_name("teamnet"))
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node", str(torchrun), "--no-python", teamnet, "train",
                    "--data", str(base["data"]), "--train-list", str(base["train_list"]),
                    "--output", str(run), *base["options"], *options], check=True)


def markdown(rows, title):
    lines = [f"| {title} | top-1 (mean +- std) | seeds | params (M) | GFLOPs/clip |",
             "|---|---|---|---|---|"]
    for name, row in rows.items():
        scores = np.array(row["top1"])
        lines.append(f"| {name} | {scores.mean():.3f} +- {scores.std():.3f} | {len(scores)} | "
                     f"{row['params_M']:.2f} | {row['gflops']:.3f} |")
    return "\n".join(lines)


def chart(tables, path):
    from teamnet.pictures import pyplot, save_png
    figure, axes = pyplot().subplots(1, len(tables), figsize=(5.5 * len(tables), 3.8), squeeze=False)
    for axis, (title, rows) in zip(axes[0], tables.items()):
        names = list(rows)
        means = [np.mean(rows[n]["top1"]) for n in names]
        stds = [np.std(rows[n]["top1"]) for n in names]
        axis.bar(range(len(names)), means, yerr=stds, capsize=4, color="tab:blue")
        axis.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        axis.set(title=title, ylabel="test top-1", ylim=(0, 1.05))
    figure.tight_layout()
    save_png(figure, path)


def run_name(extra, seed):
    """A run's folder name: "team-arrangement-c-s-seed0" for --team-arrangement c->s."""
    words = [extra[0].lstrip("-")] + [re.sub(r"[^\w]+", "-", value) for value in extra[1:]]
    return "-".join(words + [f"seed{seed}"])


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arrangements", nargs="*", default=list(ARRANGEMENTS),
                        metavar="A", help="TEAM arrangements to compare [default: all]")
    parser.add_argument("--positions", nargs="*", default=POSITIONS, metavar="P",
                        help="TEAM position sets to compare, each one quoted string "
                             "[default: none, stem, ... up to res5]")
    parser.add_argument("--grids", nargs="*", choices=GRIDS, default=["arrangement",
                                                                      "positions"],
                        help="what to compare: TEAM arrangements, TEAM positions, models "
                             "[default: arrangement positions]")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 per setting "
                        "[default: 3]")
    parser.add_argument("--data", type=Path, help="an extracted dataset [default: the "
                        "synthetic --set, made in --work]")
    parser.add_argument("--train-list", type=Path, help="training list (with --data)")
    parser.add_argument("--test-list", type=Path, help="test list (with --data)")
    parser.add_argument("--set", choices=SETS, default="patch",
                        help="the synthetic set, without --data [default: patch]")
    parser.add_argument("--train-options", default="--epochs 14 --lr-steps 10",
                        help="options every run gets, a shell-quoted string "
                             "[default: '--epochs 14 --lr-steps 10']")
    parser.add_argument("--torchrun", type=int, default=0, metavar="N",
                        help="train each run with torchrun on N processes [default: 0, "
                             "in this process]")
    parser.add_argument("--out", type=Path, default=Path("ablation"),
                        help="OUT.md, OUT.png and OUT.json are written [default: ablation]")
    parser.add_argument("--work", type=Path, default=None,
                        help="where a new folder for the runs and the synthetic set is made "
                             "(about 260 MB a setting and seed) [default: the system's "
                             "temporary folder]")
    parser.add_argument("--resume", action="store_true",
                        help="keep the seeds OUT.json already has (made on the same data, "
                             "test list and options: recorded and compared) and train only "
                             "the missing ones")
    parser.add_argument("--keep", action="store_true",
                        help="keep --work's runs afterwards [default: removed at the end]")
    return parser.parse_args()


def main():
    args = arguments()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    # a folder of its own, even inside --work: removing it never touches anything else
    work = Path(tempfile.mkdtemp(prefix="teamnet-ablation-", dir=args.work))
    print(f"runs in {work}" + ("" if args.keep else " (removed at the end; --keep keeps them)"))
    try:
        ablate(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def ablate(args, work):
    from motion_runs import BASE, motion_dataset, test
    options = shlex.split(args.train_options) + ["--val-fraction", "0"]
    where = f'the "{args.set}" set' if args.data is None else str(args.data)
    synthetic = args.data is None
    if synthetic:
        args.data, args.train_list, args.test_list = motion_dataset.build(
            work / "set", args.set, **({"per_class_train": 16, "per_class_test": 8}
                                       if args.set == "which" else {}))
        options = BASE + SET_OPTIONS.get(args.set, []) + options
    base = {"data": args.data, "train_list": args.train_list, "options": options}
    classes = len(json.loads((Path(args.data) / "index.json").read_text())["classes"])
    grids = {"arrangement (at " + " ".join(DEFAULT_POSITIONS) + ")": {
                 a: ["--team-arrangement", a] for a in args.arrangements},
             "positions (c->s)": {p: ["--team-positions", p] for p in args.positions},
             "models": MODELS}
    grids = {title: grid for title, grid in grids.items() if title.split()[0] in args.grids}
    made = identity(args, options, synthetic)
    before = earlier_tables(args.out.with_suffix(".json"), made) if args.resume else {}
    settings = {"data": where, "grids": args.grids, "seeds": args.seeds,
                "train_options": args.train_options, "options": options, "identity": made}
    tables, done = {}, {}
    for title, grid in grids.items():
        rows = tables.setdefault(title, {})
        for name, extra in grid.items():
            key = tuple(extra)
            same = ("--team-positions", " ".join(DEFAULT_POSITIONS))  # the default arrangement
            if key == same and ("--team-arrangement", "c->s") in done:
                key = ("--team-arrangement", "c->s")  # the same runs: do not train them twice
            if key not in done:
                scores = before.get(title, {}).get(name, {}).get("top1", [])[:args.seeds]
                for seed in range(len(scores), args.seeds):
                    run = work / run_name(extra, seed)
                    train_run(base, run, [*extra, "--seed", str(seed)], args.torchrun)
                    scores.append(test(run, args.test_list)["top1"])
                    print(f"{name}, seed {seed}: top-1 {scores[-1]:.3f}", flush=True)
                params, flops = cost(options + extra, classes)
                done[key] = {"top1": scores, "params_M": params, "gflops": flops}
            rows[name] = done[key]
            write(args.out, settings, tables, before)
    text, tables = write(args.out, settings, tables, before)
    chart(tables, args.out.with_suffix(".png"))
    print(text)
    print(f"wrote {args.out.with_suffix('.md')}, .png and .json")


def identity(args, options, synthetic):
    """What defines a row besides its own setting and seed: the data (the synthetic set's
    name, or the dataset's resolved path) and a fingerprint of its index (classes, settings,
    every video's id, label and GOPs), the test list's content, and the training options.
    The grids and the seed count are not in it: --resume adds settings and seeds."""
    index = json.loads((Path(args.data) / "index.json").read_text())
    videos = sorted((v["id"], v["label"], v["p_frames"]) for v in index["videos"])
    digest = lambda value: hashlib.sha256(  # noqa: E731
        json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
    return {"set": args.set if synthetic else None,
            "data": None if synthetic else str(Path(args.data).resolve()),
            "data_fingerprint": digest([index["classes"], index["settings"], videos]),
            "test_list_fingerprint": digest(Path(args.test_list).read_text()),
            "options": options}


def earlier_tables(path, made):
    """{grid title: {setting: row}} from an OUT.json whose rows were made as `made`
    (identity) says (a row's "top1": seeds 0, 1, ...); anything else stops the run."""
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    recorded = earlier.get("settings", {}).get("identity") or {}
    differ = [key for key in made if recorded.get(key) != made[key]]
    if differ:
        shown = "; ".join(f"{key} {recorded.get(key)!r} there, {made[key]!r} here"
                          for key in differ)
        raise SystemExit(f"{path} was made otherwise ({shown}): its rows are not this run's; "
                         "run without --resume, or give another --out")
    return earlier["tables"]


def write(out, settings, tables, before):
    """OUT.md and OUT.json of the tables so far, each written whole (a stop leaves the last
    complete version), keeping the rows of before that this run has not (yet) made: a stop
    loses none of them. Returns the Markdown and the tables written."""
    from preprocess.atomic import atomic_output
    tables = {title: {**before.get(title, {}), **tables.get(title, {})}
              for title in {**before, **tables}}
    text = "\n\n".join(f"**{title}** ({settings['data']})\n\n"
                       f"{markdown(rows, title.split()[0])}" for title, rows in tables.items())
    for suffix, content in ((".md", text + "\n"), (".json", json.dumps(
            {"settings": settings, "tables": tables}, indent=1))):
        with atomic_output(out.with_suffix(suffix)) as temporary:
            Path(temporary).write_text(content)
    return text, tables


if __name__ == "__main__":
    main()
