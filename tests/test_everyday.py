"""Everyday use: defaults sized from the machine, outputs that never replace each other, a run
whose progress can be seen (learning curves, best epoch, resume messages), readable pictures."""
import dataclasses
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli import main
from preprocess.machine import available_memory, usable_cores
from preprocess.settings import ParallelSettings
from preprocess.text import plural
from teamnet.config import DataConfig, ModelConfig, TrainConfig
from teamnet.distributed import Context
from teamnet.memory import (fitting_batch, saved_activation_bytes, step_memory,
                            with_margin)
from teamnet.model import build_model
from teamnet.pictures import (cam_grid, confusion_figure, learning_curves,
                              timeline_figure)
from teamnet.train import best_epoch, fit_to_machine

SMALL = ["--pretrained", "none", "--iframe-arch", "resnet18", "--num-segments", "4",
         "--input-size", "32", "--batch-size", "8", "--workers", "0"]
ROOT = Path(__file__).parent.parent


def train(*args):
    return CliRunner().invoke(main, ["train", *map(str, args)])


def evaluate(*args):
    return CliRunner().invoke(main, ["evaluate", *map(str, args), "--num-segments", "4",
                                     "--workers", "0", "--json"])


def report_of(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


# --- defaults that fit the machine ---------------------------------------------------------

def test_cores_follow_the_affinity_the_process_is_given():
    assert usable_cores() == len(os.sched_getaffinity(0))
    one = subprocess.run([sys.executable, "-c", "import os; os.sched_setaffinity(0, {0}); "
                          "from preprocess.machine import usable_cores; print(usable_cores())"],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    assert one.stdout.strip() == "1"
    assert ParallelSettings().workers == usable_cores()  # encode and extract: every core
    help_text = " ".join(CliRunner().invoke(main, ["extract", "--help"]).output.split())
    assert "the cores available here" in help_text and f"[default: {usable_cores()}" in help_text
    assert 0 < available_memory() < 2**50


def test_threads_and_loader_workers_are_set_from_the_cores(monkeypatch):
    threads = torch.get_num_threads()
    cores = usable_cores()
    config = TrainConfig(data=DataConfig(data="D"))
    assert config.data.workers is None  # "auto" until the machine is known
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        for ranks_here in (1, 2):
            context = Context(0, 0, ranks_here, torch.device("cpu"), ranks_here)
            fitted = fit_to_machine(config, context)
            share = max(1, cores // ranks_here)
            assert fitted.data.workers == min(8, share)
            assert torch.get_num_threads() == share  # not every core of the host per rank
        torch.set_num_threads(1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's say goes
        given = TrainConfig(data=DataConfig(data="D", workers=3))
        assert fit_to_machine(given, context).data.workers == 3
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


MEASURE = """
import sys, torch
from teamnet.config import ModelConfig
from teamnet.model import build_model
from teamnet.memory import saved_activation_bytes
n, t, s = 4, 4, 112
config = ModelConfig(pretrained="none", iframe_arch="resnet50")
activations, parameters = saved_activation_bytes(config, 10, n, t, s)
model = build_model(config, 10)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
inputs = {m: torch.randn(n, t, c, s, s) for m, c in (("iframe", 3), ("mv", 2), ("residual", 3))}
peak = lambda: int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
before = peak()
for _ in range(2):
    model.loss(model(inputs), torch.zeros(n, dtype=torch.long)).backward()
    optimizer.step()
    optimizer.zero_grad()
print(activations * 1.1 + 2 * parameters, peak() - before)
"""


def test_the_memory_estimate_is_near_a_measured_step():
    # a real forward, backward and SGD step in a fresh process: its peak memory growth
    # (activations, gradients, momentum) against the estimate from the meta device
    done = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    estimate, measured = map(float, done.stdout.split())
    assert 0.75 < estimate / measured < 1.33, (estimate, measured)


def test_the_estimate_grows_with_the_batch_and_counts_every_part():
    model = ModelConfig(pretrained="none", iframe_arch="resnet18")
    two, parameters = saved_activation_bytes(model, 4, 2, 2, 64)
    four, _ = saved_activation_bytes(model, 4, 4, 2, 64)
    assert four == pytest.approx(2 * two, rel=0.05)  # linear in the clips (but small weights)
    assert parameters == sum(p.numel() * 4 for p in build_model(model, 4).parameters())
    config = TrainConfig(data=DataConfig(data="D", workers=2, num_segments=2, input_size=64),
                         model=model)
    need = step_memory(config, 4, 2, 8)
    assert need["model"] == 3 * parameters  # weights, gradients, momentum
    assert need["total"] == sum(need[k] for k in ("activations", "model", "loader", "runtime"))


def test_a_step_keeps_a_margin_and_the_batch_it_names_fits_with_it():
    # the shared machine: an estimate of 20.4 GiB against 21 GiB free started a run
    # that filled the machine; with the margin it is refused
    assert with_margin(20.4 * 2**30) > 21 * 2**30
    config = TrainConfig(data=DataConfig(data="D", workers=3, num_segments=4, input_size=160),
                         model=ModelConfig(pretrained="none", iframe_arch="resnet18"))
    need = step_memory(config, 4, 8, 8)
    have = int(need["total"] * 1.05)  # the estimate fits, the margin does not
    fits = fitting_batch(need, 8, 3, have)
    assert 0 < fits < 8
    at = lambda batch: with_margin(step_memory(config, 4, batch, 8)["total"])  # noqa: E731
    assert at(fits) <= have < at(fits + 1)  # the most that fits, workers counted
    assert step_memory(config, 4, 8, 8)["loader"] > step_memory(
        dataclasses.replace(config, data=dataclasses.replace(config.data, workers=0)),
        4, 8, 8)["loader"]


def test_a_step_that_cannot_fit_the_cpu_is_refused_before_anything_is_written(tmp_path,
                                                                               motion):
    data, train_list, _ = motion
    run = tmp_path / "run"
    result = train("--data", data, "--train-list", train_list, "--output", run, "--device",
                   "cpu", "--pretrained", "none", "--workers", "0", "--input-size", "4096",
                   "--batch-size", "64")
    assert result.exit_code == 1, result.output
    assert "a training step needs about" in result.output and "GiB" in result.output
    for option in ("--input-size", "--num-segments", "--workers", "--no-memory-check",
                   "paper's GPU settings"):
        assert option in result.output
    assert not run.exists()  # no run folder, no config.json: nothing half started
    fits = train("--data", data, "--train-list", train_list, "--output", run, "--device", "cpu",
                 "--epochs", "1", *SMALL)
    assert fits.exit_code == 0, fits.output
    assert "memory: about" in fits.output and "GiB available" in fits.output


# --- outputs that never overwrite each other ------------------------------------------------

@pytest.fixture(scope="module")
def tested_run(tmp_path_factory, motion):
    """Two epochs trained on the motion set's training list, tested on its test list."""
    data, train_list, test_list = motion
    run = tmp_path_factory.mktemp("everyday") / "run"
    result = train("--data", data, "--train-list", train_list, "--test-list", test_list,
                   "--output", run, "--epochs", "2", "--val-fraction", "0.25", *SMALL)
    assert result.exit_code == 0, result.output
    return run, result.output


def test_evaluate_defaults_to_the_run_s_test_list(tested_run, motion):
    run, _ = tested_run
    data, train_list, test_list = motion
    report = report_of(evaluate("--checkpoint", run / "best.pt"))
    assert report["videos"] == 24 and report["evaluated"] == f"the run's test list {test_list}"
    everything = report_of(evaluate("--checkpoint", run / "best.pt", "--all-videos"))
    assert everything["videos"] == 72


def test_evaluate_without_a_test_list_takes_the_videos_not_trained_on(tmp_path, motion):
    data, train_list, _ = motion
    run = tmp_path / "run"
    assert train("--data", data, "--train-list", train_list, "--output", run, "--epochs", "1",
                 *SMALL).exit_code == 0
    report = report_of(evaluate("--checkpoint", run / "best.pt"))
    assert report["videos"] == 24  # 72 videos, 48 in the training list
    assert "in neither the training nor the validation set" in report["evaluated"]
    trained = {line.strip()[:-len(".mp4")] for line in train_list.read_text().splitlines()}
    assert report["videos"] == 72 - len(trained)
    everything = tmp_path / "all"  # trained on every video: all of them, with a warning
    assert train("--data", data, "--output", everything, "--epochs", "1", *SMALL).exit_code == 0
    result = evaluate("--checkpoint", everything / "best.pt")
    assert report_of(result)["videos"] == 72
    assert "training videos included" in result.output and "--list" in result.output


def test_evaluating_other_lists_or_protocols_keeps_each_confusion_matrix(tested_run, motion):
    run, _ = tested_run
    data, train_list, test_list = motion
    first = report_of(evaluate("--checkpoint", run / "best.pt", "--list", test_list))
    second = report_of(evaluate("--checkpoint", run / "best.pt", "--list", train_list))
    third = report_of(evaluate("--checkpoint", run / "best.pt", "--list", test_list,
                               "--crops", "3"))
    pictures = {first["confusion_image"], second["confusion_image"], third["confusion_image"]}
    assert len(pictures) == 3 and all(Path(p).stat().st_size > 1000 for p in pictures)
    assert Path(first["confusion_image"]).name == "confusion-best-test-4seg-1crop-32px.png"
    # the largest mistakes, named in --json (and the text)
    confusion, classes = np.array(first["confusion"]), list(first["per_class"])
    off = confusion - np.diag(np.diag(confusion))
    for pair in first["most_confused"]:
        true, predicted = classes.index(pair["true"]), classes.index(pair["predicted"])
        assert pair["videos"] == off[true, predicted] > 0
        assert pair["share"] == pytest.approx(pair["videos"] / confusion[true].sum())
    assert len(first["most_confused"]) == min(10, np.count_nonzero(off))


# Something-Something v2's class names as its labels file gives them (a few of its 174)
SSV2_NAMES = [
    "Approaching something with your camera", "Attaching something to something",
    "Bending something so that it deforms", "Bending something until it breaks",
    "Closing something", "Covering something with something",
    "Dropping something behind something", "Folding something",
    "Holding something next to something",
    "Lifting a surface with something on it but not enough for it to slide down",
    "Moving something and something so they pass each other",
    "Poking a stack of something so the stack collapses",
    "Pretending to put something on a surface",
    "Pulling something from left to right", "Pulling something from right to left",
    "Pushing something so that it slightly moves",
    "Putting something that cannot actually stand upright upright on the table, so it "
    "falls on its side", "Spilling something next to something",
    "Tearing something into two pieces", "Turning the camera left while filming something",
    "Turning the camera right while filming something", "Twisting something"]


@pytest.mark.parametrize("classes", [SSV2_NAMES, SSV2_NAMES * 8, ["walk", "run", "jump"]],
                         ids=["ssv2", "ssv2-176", "short"])
def test_a_confusion_matrix_keeps_its_room_and_every_word_in_the_picture(classes):
    classes = [f"{name} {n}" if len(classes) > 100 else name for n, name in enumerate(classes)]
    k = len(classes)
    confusion = np.random.default_rng(0).integers(0, 5, (k, k)) + 10 * np.eye(k, dtype=int)
    figure = confusion_figure(confusion, classes)
    figure.canvas.draw()
    whole = figure.bbox
    texts = [t for t in figure.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text()]
    for text in texts:  # title, axis labels, colour bar label, ticks, the key: none cut off
        box = text.get_window_extent()
        assert (box.x0 >= whole.x0 - 1 and box.y0 >= whole.y0 - 1 and box.x1 <= whole.x1 + 1
                and box.y1 <= whole.y1 + 1), text.get_text()[:60]
    matrix = figure.axes[0].get_window_extent()
    assert matrix.height > 0.6 * whole.height  # not squeezed into a corner by the names
    ticks = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    long = max(map(len, classes)) > 24
    assert ticks == ([str(n) for n in range(1, k + 1)] if long else classes)
    if long:  # numbered on the axes, named in the key
        key = "\n".join(t.get_text() for t in texts)
        assert all(f"{n}  {name}" in key for n, name in enumerate(classes, 1))
    matplotlib.pyplot.close(figure)


def test_a_timeline_stacks_each_window_s_top_k_with_a_legend():
    classes = ["walk", "run", "jump", "sit"]
    top = lambda *pairs: [{"class": c, "probability": p} for c, p in pairs]  # noqa: E731
    windows = [{"start": 0, "end": 3, "top": top(("run", 0.6), ("walk", 0.3))},
               {"start": 3, "end": 6, "error": "decoding failed"},
               {"start": 6, "end": 10, "top": top(("sit", 0.5), ("run", 0.45))}]
    figure = timeline_figure(windows, classes, "clip.mkv")
    axis = figure.axes[0]
    colour = {t.get_text(): h.get_facecolor() for t, h in
              zip(axis.get_legend().get_texts(), axis.get_legend().legend_handles)}
    assert list(colour) == ["walk", "run", "sit"]  # every class shown, in the classes' order
    bands = [(round(b.get_x(), 6), round(b.get_width(), 6), round(b.get_y(), 6),
              round(b.get_height(), 6), b.get_facecolor()) for b in axis.patches]
    expected = [(0, 3, 0, 0.6, colour["run"]), (0, 3, 0.6, 0.3, colour["walk"]),
                (6, 4, 0, 0.5, colour["sit"]), (6, 4, 0.5, 0.45, colour["run"])]
    assert [b for b in bands if b[0] != 3] == expected
    (failed,) = [b for b in axis.patches if b.get_x() == 3]
    assert failed.get_hatch() == "//" and failed.get_height() == 1
    matplotlib.pyplot.close(figure)


def test_most_confused_pairs_are_ranked_with_their_share():
    from teamnet.metrics import accuracy_report
    classes = ["a", "b", "c"]
    labels = [0, 0, 0, 0, 1, 1, 2]
    predicted = [1, 1, 2, 0, 0, 1, 2]
    logits = np.eye(3)[predicted]
    pairs = accuracy_report(logits, np.array(labels), classes)["most_confused"]
    assert pairs == [{"true": "a", "predicted": "b", "videos": 2, "share": 0.5},
                     {"true": "b", "predicted": "a", "videos": 1, "share": 0.5},
                     {"true": "a", "predicted": "c", "videos": 1, "share": 0.25}]


# --- a run you can see ----------------------------------------------------------------------

def test_a_run_draws_its_learning_curves_and_names_its_best_epoch(tested_run, tmp_path):
    run, output = tested_run
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in history] == [0, 1]
    for epoch in history:
        assert 0 <= epoch["train_top1"] <= 1 and 0 <= epoch["val_top1"] <= 1
        assert epoch["val_loss"] > 0
    assert (run / "curves.png").stat().st_size > 5000
    drawn = learning_curves(history, tmp_path / "curves.png")
    for key in ("train_loss", "val_loss", "train_top1", "val_top1", "lr"):
        assert drawn[key] == [(m["epoch"], m[key]) for m in history]  # one point an epoch
    epoch, score = best_epoch(history)
    assert f"best.pt is epoch {epoch} (validation top-1 {score:.2%})" in output
    best = torch.load(run / "best.pt", weights_only=True, map_location="cpu")
    assert best["epoch"] == epoch


def test_best_epoch_takes_the_last_of_equal_scores():
    history = [{"epoch": 0, "val_top1": 0.5}, {"epoch": 1, "val_top1": 0.75},
               {"epoch": 2, "val_top1": 0.75}, {"epoch": 3, "val_top1": 0.5}]
    assert best_epoch(history) == (2, 0.75)
    assert best_epoch([{"epoch": 0}, {"epoch": 1}]) == (1, None)


def test_resume_says_where_it_is_and_does_not_test_again(tested_run):
    run, _ = tested_run
    tested = (run / "test_metrics.json").stat().st_mtime_ns
    result = train("--output", run, "--resume")
    assert result.exit_code == 0, result.output
    assert "2 of 2 epochs trained; nothing to do" in result.output
    assert "top-1" not in result.output  # no test evaluation again
    assert (run / "test_metrics.json").stat().st_mtime_ns == tested
    steps = train("--output", run, "--resume", "--epochs", "4", "--lr-steps", "2")
    assert steps.exit_code == 1
    assert ("--lr-steps: epochs 0-1 are trained and the learning rate of epoch 2 is set"
            in steps.output)


def test_cam_pictures_show_each_gop_once(tmp_path):
    rng = np.random.default_rng(0)
    clip = {"iframe": rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8),
            "mv": rng.integers(-5, 5, (6, 32, 32, 2)).astype(np.int8)}
    maps = {m: rng.random((6, 2, 2)) for m in clip}
    # a short video: 6 segments over 3 GOPs
    assert cam_grid(clip, maps, "t", tmp_path / "a.png", gops=[0, 0, 1, 1, 2, 2]) == [0, 2, 4]
    assert cam_grid(clip, maps, "t", tmp_path / "b.png") == list(range(6))
    assert (tmp_path / "a.png").stat().st_size > 1000


# --- small things a new user trips over ----------------------------------------------------

def test_version_help_and_plurals():
    runner = CliRunner()
    version = runner.invoke(main, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("teamnet ")
    assert version.output.split()[1][0].isdigit()
    assert "None" not in runner.invoke(main, ["train", "--help"]).output.split("--seed")[1][:200]
    assert [plural(1, "class"), plural(3, "class"), plural(1, "video"), plural(2, "video")] == \
        ["1 class", "3 classes", "1 video", "2 videos"]


def test_flip_pairs_with_flips_off_is_refused(tmp_path, motion):
    data, train_list, _ = motion
    (tmp_path / "pairs.txt").write_text("up,down\n")
    result = train("--data", data, "--train-list", train_list, "--output", tmp_path / "run",
                   "--flip", "off", "--flip-pairs", tmp_path / "pairs.txt", *SMALL)
    assert result.exit_code == 1 and "--flip off flips no clip" in result.output
    assert not (tmp_path / "run").exists()


def test_the_ablation_runner_s_help_is_immediate_and_its_runs_are_named():
    done = subprocess.run([sys.executable, "-c", (
        "import sys, runpy; sys.argv = ['ablation.py', '--help']\n"
        "try:\n    runpy.run_path('benchmarks/ablation.py', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('torch' in sys.modules)")], capture_output=True, text=True, cwd=ROOT,
        timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("False")  # --help without torch: immediate
    for option in ("--work", "--keep", "--seeds", "--torchrun", "--arrangements"):
        assert option in done.stdout
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ablation import run_name
    assert run_name(["--team-arrangement", "c->s"], 0) == "team-arrangement-c-s-seed0"


def test_the_ablation_runner_resumes_only_what_the_same_data_and_options_made(tmp_path):
    import argparse
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ablation import earlier_tables, identity, write

    def dataset(name, classes):  # an index.json and a test list, as the runner reads them
        folder = tmp_path / name
        folder.mkdir()
        (folder / "index.json").write_text(json.dumps({
            "classes": classes, "settings": {"p_stride": 1},
            "videos": [{"id": f"{c}/v", "label": k, "p_frames": [11]}
                       for k, c in enumerate(classes)]}))
        (folder / "test.txt").write_text("".join(f"{c}/v.mp4\n" for c in classes))
        return argparse.Namespace(data=folder, test_list=folder / "test.txt", set="which")

    which, other = dataset("which", ["a", "b"]), dataset("other", ["a", "c"])
    made = identity(which, ["--epochs", "20"], synthetic=True)
    out = tmp_path / "fusion.json"
    assert earlier_tables(out, made) == {}  # nothing yet: every seed is trained
    tables = {"models": {"TEAM-Net s": {"top1": [0.75, 0.5], "params_M": 1.0, "gflops": 0.1}}}
    out.write_text(json.dumps({"settings": {"identity": made}, "tables": tables}))
    assert earlier_tables(out, made) == tables
    for changed, problem in (
            (identity(which, ["--epochs", "14"], synthetic=True), "options"),
            (identity(other, ["--epochs", "20"], synthetic=True), "data_fingerprint"),
            (identity(argparse.Namespace(**{**vars(which), "set": "patch"}), ["--epochs", "20"],
                      synthetic=True), "set 'which' there, 'patch' here"),
            (identity(which, ["--epochs", "20"], synthetic=False), "data None there")):
        with pytest.raises(SystemExit, match=re.escape(problem)):
            earlier_tables(out, changed)
    # a resumed run's tables, written after each setting, keep the rows it has not reached
    settings = {"data": "d", "grids": ["models"], "seeds": 3, "train_options": "",
                "options": ["--epochs", "20"], "identity": made}
    done = {"models": {"TEAM-Net c": {"top1": [0.25], "params_M": 1.0, "gflops": 0.1}}}
    text, written = write(out.with_suffix(""), settings, done, tables)
    assert written == {"models": {**tables["models"], **done["models"]}}
    assert earlier_tables(out, made) == written
    assert "| TEAM-Net s | 0.625 +- 0.125 | 2 |" in text and "| TEAM-Net c | 0.250" in text
