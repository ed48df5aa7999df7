"""Training and evaluation: sampling, transforms, splits, end to end, DDP, resume, errors."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import motion_dataset
from ranks import TEAMNET_CLI, torchrun
from cli import main
from preprocess.store import load_index
from teamnet.data import ClipDataset, EpochSampler, make_loader
from teamnet.distributed import Context
from teamnet.progress import EpochLog
from teamnet.sampling import sample_clip, segment_positions
from teamnet.splits import SplitError, hold_out, read_flip_pairs, read_list
from teamnet.train import epoch_batches
from teamnet.transforms import Crop, apply_crop, eval_crops, normalise, train_crop

SMALL = ["--pretrained", "none", "--iframe-arch", "resnet18", "--num-segments", "4",
         "--input-size", "32", "--batch-size", "8"]


# --- sampling (docs/REPRESENTATION.md section 6) -------------------------------------------------

def test_training_positions_fall_in_their_segments():
    rng = np.random.default_rng(0)
    for _ in range(50):
        positions = segment_positions(20, 8, rng)
        edges = np.arange(9) * 20 / 8
        assert ((positions >= np.floor(edges[:-1])) & (positions < np.floor(edges[1:]))).all()
    assert segment_positions(25, 25).tolist() == list(range(25))  # centres
    assert segment_positions(10, 4).tolist() == [1, 3, 6, 8]
    assert segment_positions(3, 8).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]  # fewer GOPs repeat
    assert sorted(set(segment_positions(3, 8, rng).tolist())) == [0, 1, 2]


def test_p_frames_are_sampled_where_they_exist():
    num_p = [11, 11, 11, 0]  # a last GOP that is a lone I-frame
    rng = np.random.default_rng(1)
    for _ in range(30):
        gops, slots = sample_clip(num_p, 8, needs_p_frames=True, rng=rng)
        assert 3 not in gops and (slots < 11).all() and (slots >= 0).all()
    gops, slots = sample_clip([11, 11, 3], 3, needs_p_frames=True)
    assert gops.tolist() == [0, 1, 2] and slots.tolist() == [4, 4, 2]  # the 5th, or the last
    assert sample_clip([3, 3, 3], 3, True, p_stride=4)[1].tolist() == [1, 1, 1]  # P-frame 5
    assert sample_clip([0, 0], 2, needs_p_frames=False)[0].tolist() == [0, 1]
    with pytest.raises(ValueError, match="no GOP with P-frames"):
        sample_clip([0], 8, needs_p_frames=True)


# --- transforms (sections 5 and 7) -----------------------------------------------------------

def test_one_crop_and_flip_for_all_modalities():
    ys, xs = np.mgrid[0:64, 0:80]
    rgb = np.stack([xs, ys, xs * 0], -1).astype(np.uint8)  # pixel values say where they are
    mv = np.stack([xs * 0 + 5, ys * 0 - 7], -1).astype(np.int8)
    crop = Crop(x=10, y=4, width=32, height=32, flip=True)
    out_rgb = apply_crop(rgb[None], crop, 32)
    out_mv = apply_crop(mv[None], crop, 32, is_mv=True)
    assert out_rgb.dtype == torch.uint8 and out_rgb.shape == (1, 3, 32, 32)
    assert out_rgb[0, 0, 0, 0] == 41 and out_rgb[0, 0, 0, -1] == 10  # flipped: x 41 .. 10
    assert out_rgb[0, 1, 0, 0] == 4 and out_rgb[0, 1, -1, 0] == 35
    assert (out_mv[0, 0] == -5).all() and (out_mv[0, 1] == -7).all()  # flip negates x only
    resized = apply_crop(rgb[None], Crop(0, 0, 64, 64), 32)
    assert resized.shape == (1, 3, 32, 32) and abs(int(resized[0, 0, 0, -1]) - 62) <= 1


def test_8_bit_resize_stays_within_1_of_the_float_resize():
    rng = np.random.default_rng(0)
    for dtype, low, high in ((np.uint8, 0, 256), (np.int8, -128, 128), (np.int16, -300, 300)):
        frames = rng.integers(low, high, (3, 60, 80, 2), dtype=dtype)
        for crop, size in ((Crop(5, 3, 48, 52, flip=True), 32), (Crop(0, 0, 40, 40), 56)):
            out = apply_crop(frames, crop, size, is_mv=True)
            window = torch.from_numpy(frames[:, 3:55, 5:53] if crop.flip else frames[:, :40, :40])
            reference = torch.nn.functional.interpolate(
                window.permute(0, 3, 1, 2).double(), size=(size, size), mode="bilinear",
                align_corners=False).round()
            if crop.flip:
                reference = reference.flip(-1)
                reference[:, 0] = -reference[:, 0]
            info = np.iinfo(dtype)
            reference = reference.clamp(info.min, info.max)
            assert out.dtype == getattr(torch, np.dtype(dtype).name) and out.shape == (3, 2, size, size)
            assert (out.double() - reference).abs().max() <= 1, dtype
    # a flip negates MV x, saturating: -128 becomes 127 in int8, never wraps back to -128
    edge = np.full((1, 4, 4, 2), -128, np.int8)
    assert (apply_crop(edge, Crop(0, 0, 4, 4, flip=True), 4, is_mv=True)[:, 0] == 127).all()


def test_crop_choices():
    rng = np.random.default_rng(0)
    crops = [train_crop(256, 340, rng) for _ in range(300)]
    assert {c.width for c in crops} == {256, 224, 192, 168}
    assert all(abs([256, 224, 192, 168].index(c.width) - [256, 224, 192, 168].index(c.height)) <= 1
               for c in crops)
    assert 0.4 < np.mean([c.flip for c in crops]) < 0.6
    # the 13 places: tests/test_comparisons.py
    assert eval_crops(256, 340) == [Crop(58, 16, 224, 224)]  # 256-resize, 224 centre crop
    # at any input size the same view: 224/256 of the shorter side (resized afterwards), not a
    # zoom into the centre (a 32 px input once cropped 8 of 64 pixels)
    assert eval_crops(64, 64) == [Crop(4, 4, 56, 56)]
    assert len(eval_crops(256, 340, 3)) == 3 and len(eval_crops(256, 340, 10)) == 10


def test_normalisation_as_the_reference():
    batch = {"iframe": torch.full((1, 1, 1, 1, 3), 255, dtype=torch.uint8),  # (N, T, H, W, C)
             "mv": torch.tensor([20, -20, 200, 0], dtype=torch.int16).view(1, 1, 1, 1, 4)[..., :2],
             "residual": torch.tensor([-200, 0, 127], dtype=torch.int16).view(1, 1, 1, 1, 3)}
    out = normalise(batch, "cpu")
    torch.testing.assert_close(out["iframe"].flatten(), torch.tensor(
        [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))
    torch.testing.assert_close(out["mv"].flatten(), torch.tensor([0.5, 1 / 255 - 0.5]))
    torch.testing.assert_close(out["residual"].flatten(), torch.tensor(
        [-0.5 / 0.229, (128 / 255 - 0.5) / 0.224, 0.5 / 0.225]))


def test_sampler_splits_evenly_and_reshuffles():
    ranks = [EpochSampler(10, rank, 3, seed=5) for rank in range(3)]
    shares = [[i for _, i in sampler] for sampler in ranks]
    assert [len(s) for s in shares] == [4, 4, 4]  # padded: same count everywhere
    assert set(sum(shares, [])) == set(range(10))
    first = shares[0]
    for sampler in ranks:
        sampler.set_epoch(1)
    assert [i for _, i in ranks[0]] != first and all(e == 1 for e, _ in ranks[0])
    assert [i for _, i in EpochSampler(5, shuffle=False)] == [0, 1, 2, 3, 4]
    with pytest.raises(SplitError, match="2 videos cannot be split across 3"):
        EpochSampler(2, 0, 3)


# --- splits ------------------------------------------------------------------------------------

@pytest.fixture
def index():
    videos = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c02",
              "Archery/v_Archery_g01_c01", "Archery/v_Archery_g09_c03",
              "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0",
              "abseiling/0347ZoDXyP0_000095_000105"]
    return {"classes": ["ApplyEyeMakeup", "Archery", "abseiling", "brush_hair"],
            "by_id": {v: {"class": v.split("/")[0]} for v in videos}}


def test_ucf101_lists(tmp_path, index):
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (tmp_path / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c02.avi 1\nArchery/v_Archery_g09_c03.avi 2\n")
    (tmp_path / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    assert read_list(tmp_path / "trainlist01.txt", index) == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c02", 0), ("Archery/v_Archery_g09_c03", 1)]
    assert read_list(tmp_path / "testlist01.txt", index, "test") == [("Archery/v_Archery_g01_c01", 1)]


def test_hmdb51_split_files(tmp_path, index):
    (tmp_path / "brush_hair_test_split1.txt").write_text(
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 \nOther_clip.avi 0\n")
    (tmp_path / "brush_hair_test_split2.txt").write_text("April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1\n")
    expected = [("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0", 3)]
    assert read_list(tmp_path / "brush_hair_test_split1.txt", index, "test") == expected
    assert read_list(tmp_path, index, "train", split=2) == expected
    with pytest.raises(SplitError, match="no \\*_test_split1.txt entries for train"):
        read_list(tmp_path, index, "train", split=1)


def test_kinetics_csv_and_generic_lists(tmp_path, index):
    (tmp_path / "val.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                      "abseiling,0347ZoDXyP0,95,105,val\n")
    assert read_list(tmp_path / "val.csv", index) == [("abseiling/0347ZoDXyP0_000095_000105", 2)]
    # generic: 0-based labels, class names or none (the folder's class); no comment syntax
    (tmp_path / "mine.txt").write_text("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi 3\n"
                                       "Archery/v_Archery_g01_c01.avi 1\n"
                                       "Archery/v_Archery_g09_c03 Archery\n"
                                       "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01\n")
    assert read_list(tmp_path / "mine.txt", index) == [
        ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0", 3),
        ("Archery/v_Archery_g01_c01", 1), ("Archery/v_Archery_g09_c03", 1),
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", 0)]
    (tmp_path / "relabelled.txt").write_text("Archery/v_Archery_g09_c03 brush_hair\n")
    with pytest.raises(SplitError, match="relabelled.txt:1: 'Archery/v_Archery_g09_c03' is "
                       "labelled 'brush_hair' but the dataset's class for it is 'Archery'"):
        read_list(tmp_path / "relabelled.txt", index)
    (tmp_path / "comment.txt").write_text("# comment\nArchery/v_Archery_g01_c01\n")
    with pytest.raises(SplitError, match="comment.txt:1: video '# comment' is not in"):
        read_list(tmp_path / "comment.txt", index, missing="error")
    (tmp_path / "bad.txt").write_text("Archery/v_Archery_g01_c01\nArchery/nope.avi\n")
    assert read_list(tmp_path / "bad.txt", index) == [("Archery/v_Archery_g01_c01", 1)]
    with pytest.raises(SplitError, match="bad.txt:2: video 'Archery/nope' is not in the extracted"):
        read_list(tmp_path / "bad.txt", index, missing="error")
    (tmp_path / "bad.txt").write_text("Archery/v_Archery_g01_c01 Juggling\n")
    with pytest.raises(SplitError, match="class 'Juggling' is not among"):
        read_list(tmp_path / "bad.txt", index)


def test_validation_is_held_out_per_class():
    entries = [(f"c{c}/v{i}", c) for c in range(3) for i in range(10)] + [("c3/only", 3)]
    train, validation = hold_out(entries, 0.2, seed=0)
    assert sorted(train + validation) == sorted(entries) and not set(train) & set(validation)
    assert [sum(1 for _, c in validation if c == k) for k in range(4)] == [2, 2, 2, 0]
    assert hold_out(entries, 0.2, seed=0) == (train, validation)


def test_validation_holds_out_whole_groups():
    # UCF-101: clips cut from one long video share a group (v_Class_gNN_cMM); a validation
    # clip whose group trains would be recognised by its scene, not its action
    entries = [(f"C{c}/v_C{c}_g{g:02d}_c{k:02d}", c) for c in range(3) for g in range(1, 8)
               for k in range(1, 5)]
    group = lambda video: video.split("_g")[1][:2]
    for seed in range(5):
        train, validation = hold_out(entries, 0.2, seed)
        assert sorted(train + validation) == sorted(entries)
        for c in range(3):
            held = {group(v) for v, label in validation if label == c}
            trained = {group(v) for v, label in train if label == c}
            assert held and not held & trained
            assert 4 <= sum(1 for _, label in validation if label == c) <= 8  # ~20% of 28
    # another naming: a pattern whose first group names the source video
    other = [(f"walk/person{p}_take{t}", 0) for p in range(5) for t in range(3)]
    _, validation = hold_out(other, 0.2, 0, pattern=r"(person\d+)_take")
    assert len({v.split("_")[0] for v, _ in validation}) == 1 and len(validation) == 3
    _, validation = hold_out(other, 0.2, 0, pattern="none")  # one group a video
    assert len(validation) == 3 and len({v.split("_")[0] for v, _ in validation}) >= 1
    with pytest.raises(SplitError, match="not a regular expression"):
        hold_out(other, 0.2, 0, pattern="(")


# --- end to end, DDP, resume --------------------------------------------------------------------

@pytest.fixture(scope="module")
def directions(tmp_path_factory):
    """A patch moving right, left, down or up: a horizontal flip turns right into left."""
    return motion_dataset.build(tmp_path_factory.mktemp("directions"), "direction")


def train_and_test(runner, motion, output, *options):
    data, train_list, test_list = motion
    result = runner.invoke(main, ["train", "--data", str(data), "--train-list", str(train_list),
                                  "--val-fraction", "0", "--epochs", "14", "--lr-steps", "10",
                                  "--output", str(output), *SMALL, "--workers", "0", *options])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["evaluate", "--checkpoint", str(output / "best.pt"), "--data",
                                  str(data), "--list", str(test_list), "--num-segments", "4",
                                  "--input-size", "32", "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


# TEAM-Net seeing local motion that one frame cannot show, and matching it to appearance:
# tests/test_fusion.py


@pytest.mark.slow
def test_direction_classes_learn_with_flips_off_or_swapped(tmp_path, directions):
    # With plain flips, right and left become one class (measured: 0.71 top-1, right 0.33).
    runner = CliRunner()
    (tmp_path / "pairs.txt").write_text("right,left\n")
    for name, options in (("off", ["--flip", "off"]),
                          ("pairs", ["--flip-pairs", str(tmp_path / "pairs.txt")])):
        teamnet = train_and_test(runner, directions, tmp_path / name, *options)
        assert teamnet["top1"] >= 0.9, (name, teamnet["per_class"])
        config = json.loads((tmp_path / name / "config.json").read_text())["data"]
        assert config["flip"] == ("on" if name == "pairs" else "off")  # recorded
        assert bool(config["flip_pairs"]) == (name == "pairs")
    # (an I-frame TSN cannot tell motion: tests/test_fusion.py)


@pytest.mark.slow
def test_ddp_with_two_processes(tmp_path, motion):
    data, train_list, _ = motion
    done = torchrun("train", "--data", data, "--train-list", train_list, "--epochs", "2",
                    "--output", tmp_path / "run", "--val-fraction", "0.25", *SMALL,
                    "--workers", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2  # written once, by rank 0
    for epoch in metrics:  # 36 training videos over 2 ranks, 4 clips a rank a step
        assert epoch["steps_per_rank"] == [4, 4]
        assert 0 <= epoch["val_top1"] <= 1
    assert sorted(p.name for p in (tmp_path / "run").glob("*.pt")) == ["best.pt", "last.pt"]


@pytest.mark.slow
def test_resume_after_a_kill_continues_exactly(tmp_path, motion):
    data, train_list, _ = motion
    command = [TEAMNET_CLI, "train", "--data", str(data), "--train-list", str(train_list),
               "--epochs", "3", "--lr-steps", "2", "--val-fraction", "0.25", *SMALL, "--workers", "0"]
    whole = subprocess.run(command + ["--output", str(tmp_path / "whole")], capture_output=True,
                           text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = subprocess.Popen(command + ["--output", str(tmp_path / "cut")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    while not (tmp_path / "cut" / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    log = tmp_path / "cut" / "metrics.jsonl"  # the kill may land before its first line
    assert not log.exists() or len(log.read_text().splitlines()) < 3
    resumed = subprocess.run([TEAMNET_CLI, "train", "--data", str(data), "--output",
                              str(tmp_path / "cut"), "--resume"], capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    read = lambda run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    keys = ("epoch", "lr", "train_loss", "val_top1", "steps_per_rank")
    assert [{k: m[k] for k in keys} for m in read("cut")] == [{k: m[k] for k in keys} for m in read("whole")]


def test_bad_configuration_is_named(tmp_path, motion):
    data, train_list, test_list = motion
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--data", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output
    (tmp_path / "list.txt").write_text("up/up00.mp4\nup/nothere.mp4\n")
    result = runner.invoke(main, ["train", "--data", str(data), "--train-list",
                                  str(tmp_path / "list.txt"), "--output", str(tmp_path / "x"),
                                  "--missing", "error"])
    assert result.exit_code == 1 and "list.txt:2: video 'up/nothere'" in result.output
    # a checkpoint for 4 classes against a dataset with 3 of them
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    index = json.loads((data / "index.json").read_text())
    index["videos"] = [v for v in index["videos"] if v["class"] != "still"]
    index["classes"] = ["down", "sideways", "up"]
    for video in index["videos"]:
        video["label"] = index["classes"].index(video["class"])
        (fewer / video["shard"]).exists() or (fewer / video["shard"]).symlink_to(data / video["shard"])
    (fewer / "index.json").write_text(json.dumps(index))
    result = runner.invoke(main, ["train", "--data", str(data), "--train-list", str(train_list),
                                  "--epochs", "1", "--output", str(tmp_path / "one"), *SMALL,
                                  "--workers", "0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["evaluate", "--checkpoint", str(tmp_path / "one" / "best.pt"),
                                  "--data", str(fewer), "--workers", "0"])
    assert result.exit_code == 1 and "trained on 4 classes" in result.output and "has 3" in result.output


def test_epoch_log_gives_the_wait_for_the_first_batch_apart():
    # The first batch of an epoch waits for every worker to start a whole batch: the log
    # must give that wait apart, and count it in data_wait too.
    def batches():
        time.sleep(0.3)  # the first batch is slow, the rest come at once
        yield from range(3)
    context = Context(0, 0, 1, torch.device("cpu"))
    log = EpochLog(batches(), "test", context)
    for _ in log:
        time.sleep(0.05)  # the step
        log.add(torch.tensor(1.0), 1)
    rates = log.rates()
    assert 0.3 <= rates["first_batch_s"] < 0.3 + 0.05
    assert rates["seconds"] >= 0.3 + 3 * 0.05
    waited = rates["data_wait"] * rates["seconds"]
    assert rates["first_batch_s"] <= waited < rates["first_batch_s"] + 0.05
    assert rates["clips_per_s"] == pytest.approx(3 / rates["seconds"])


class _Marked(torch.utils.data.Dataset):
    """Leaves a file EPOCH-INDEX in folder for every item a loader worker makes."""

    def __init__(self, folder):
        self.folder = folder
        folder.mkdir(exist_ok=True)

    def __len__(self):
        return 4

    def __getitem__(self, key):
        epoch, index = key
        (self.folder / f"{epoch}-{index}").touch()
        return index


def test_an_epoch_s_batches_are_made_as_soon_as_it_is_asked_for(tmp_path):
    # The trainer asks for the next epoch before validating and saving: its workers must start
    # on it then, not when the epoch's first batch is wanted (about 2 s an epoch on a GPU).
    made = lambda folder, epoch: sorted(p.name for p in folder.glob(f"{epoch}-*"))  # noqa: E731
    loader = make_loader(_Marked(tmp_path / "workers"), 2, 1, train=True)
    assert sorted(int(i) for batch in epoch_batches(loader, 0) for i in batch) == [0, 1, 2, 3]
    batches = epoch_batches(loader, 1)
    deadline = time.monotonic() + 60
    while len(made(tmp_path / "workers", 1)) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert made(tmp_path / "workers", 1) == ["1-0", "1-1", "1-2", "1-3"]  # none asked for yet
    assert sorted(int(i) for batch in batches for i in batch) == [0, 1, 2, 3]
    # without workers the main process loads each batch when it is wanted
    loader = make_loader(_Marked(tmp_path / "main"), 2, 0, train=True)
    batches = epoch_batches(loader, 0)
    time.sleep(0.2)
    assert made(tmp_path / "main", 0) == []
    assert sorted(int(i) for batch in batches for i in batch) == [0, 1, 2, 3]


def test_parameter_groups_decay_and_head_learning_rate():
    from teamnet.model import TEAMNet
    from teamnet.train import parameter_groups
    model = TEAMNet(4, "resnet18", "resnet18")
    groups = parameter_groups(model, 5e-4, 0.01, head_lr_mult=5)
    owner = {id(p): name for name, p in model.named_parameters()}
    seen = [owner[id(p)] for group in groups for p in group["params"]]
    assert sorted(seen) == sorted(owner.values())  # every parameter exactly once
    for group in groups:
        for parameter in group["params"]:
            name = owner[id(parameter)]
            assert group["lr"] == (0.05 if name.startswith("heads.") else 0.01), name
            decays = name.endswith("weight") and parameter.dim() > 1  # conv and linear weights
            assert group["weight_decay"] == (5e-4 if decays else 0.0), name
    assert len(parameter_groups(model, 5e-4, 0.01)) == 2  # no multiplier: decay or not


def test_imagenet_weights_by_default_and_a_clear_stop_without_them(tmp_path, motion,
                                                                     monkeypatch):
    # the default is the paper's ImageNet initialisation; where it cannot be fetched (here a
    # proxy that refuses, as on an offline node) the run stops before writing anything
    data, train_list, _ = motion
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    result = CliRunner().invoke(main, ["train", "--data", str(data), "--train-list",
                                       str(train_list), "--output", str(tmp_path / "run"),
                                       "--iframe-arch", "resnet18"])
    assert result.exit_code == 1, result.output
    assert "--pretrained none" in result.output and "--pretrained FILE" in result.output
    assert not (tmp_path / "run").exists()


def test_flips_off_and_flip_pairs(tmp_path, motion):
    # direction classes: a flip must not happen (--flip off) or must swap the class
    data, train_list, _ = motion
    index = load_index(data)
    up, down = index["classes"].index("up"), index["classes"].index("down")
    entries = [(v["id"], v["label"]) for v in index["videos"] if v["class"] in ("up", "down")]
    (tmp_path / "pairs.txt").write_text("# a flip turns one into the other (here, to test)\nup,down\n")
    pairs = read_flip_pairs(tmp_path / "pairs.txt", index["classes"])
    assert pairs == {up: down, down: up}
    for flip, flip_pairs, swapped in ((False, None, False), (True, None, False),
                                      (True, pairs, True)):
        dataset = ClipDataset(data, entries, ("mv",), 2, 32, train=True, flip=flip,
                              flip_pairs=flip_pairs)
        changed = [dataset[(epoch, i)][1] != entries[i][1]
                   for epoch in range(4) for i in range(len(entries))]
        assert any(changed) == swapped and (not swapped or 0.3 < np.mean(changed) < 0.7)
        if not flip:  # never flipped: the MV x channel keeps its sign (vertical motion: ~0)
            crops = [train_crop(64, 64, np.random.default_rng(k), flip=False) for k in range(50)]
            assert not any(c.flip for c in crops)
    (tmp_path / "bad.txt").write_text("up,sideways\nup,still\n")
    with pytest.raises(SplitError, match="bad.txt:2: 'up' is paired twice"):
        read_flip_pairs(tmp_path / "bad.txt", index["classes"])


def test_default_training_set_leaves_out_the_test_list(tmp_path, motion):
    data, _, test_list = motion
    result = CliRunner().invoke(main, [
        "train", "--data", str(data), "--test-list", str(test_list), "--val-fraction", "0",
        "--epochs", "1", "--output", str(tmp_path / "run"), *SMALL, "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "48 training and 0 validation videos" in result.output  # 72 videos - 24 test
    split = json.loads((tmp_path / "run" / "split.json").read_text())  # auditable
    assert len(split["train"]) == 48 and split["validation"] == []
    report = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert report["videos"] == 24 and report["protocol"]["num_segments"] == 25


@pytest.fixture(scope="module")
def small_motion(tmp_path_factory):
    """12 moving-patch videos of 4 classes: (extracted folder, train list)."""
    data, train_list, _ = motion_dataset.build(tmp_path_factory.mktemp("extend"), "patch",
                                               per_class_train=3, per_class_test=0, frames=24)
    return data, train_list


def extension_is_exact(tmp_path, launch, *options):
    """Three epochs straight, and two then `--resume --epochs 3`: the same metrics."""
    common = ["train", "--seed", "3", "--lr", "0.01", *options]  # default lr steps
    launch(*common, "--epochs", "3", "--output", tmp_path / "straight")
    launch(*common, "--epochs", "2", "--output", tmp_path / "extended")
    launch("train", "--output", tmp_path / "extended", "--resume", "--epochs", "3")
    read = lambda run: [{k: v for k, v in json.loads(line).items()  # noqa: E731
                         if k in ("epoch", "lr", "train_loss", "val_top1", "steps_per_rank")}
                        for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert read("extended") == read("straight") and len(read("straight")) == 3


@pytest.mark.parametrize("workers", [0, 1, 2])
@pytest.mark.parametrize("val_fraction", ["0.1", "0"])
def test_an_extended_run_is_the_run_it_extends(tmp_path, small_motion, workers, val_fraction):
    # the loaders' first iter() used to draw from torch's global random state (a resumed
    # run's loaders start afresh), so dropout differed from the third epoch on
    data, train_list = small_motion
    def launch(*args):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    extension_is_exact(tmp_path, launch, "--data", data, "--train-list", train_list, *SMALL,
                       "--workers", str(workers), "--val-fraction", val_fraction)


@pytest.mark.slow
def test_an_extended_ddp_run_is_the_run_it_extends(tmp_path, small_motion):
    data, train_list = small_motion
    def launch(*args):
        done = torchrun(*args)
        assert done.returncode == 0, done.stderr[-3000:]
    extension_is_exact(tmp_path, launch, "--data", data, "--train-list", train_list, *SMALL,
                       "--workers", "1", "--val-fraction", "0.25")
