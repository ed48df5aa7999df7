"""Looking at what the model sees: `teamnet predict` on raw videos, CAM pictures, `show`."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from matplotlib.image import imread
from torch.nn import functional as F

import motion_dataset
import reference
import synthetic
from disks import fill, small_disk
from ranks import TEAMNET_CLI
from cli import main
from preprocess.store import ClipReader, load_index
from teamnet import checkpoint
from teamnet.cam import class_maps
from teamnet.config import ModelConfig
from teamnet.data import ClipDataset, make_loader
from teamnet.distributed import setup
from teamnet.evaluate import clip_logits, predict
from teamnet.model import build_model
from teamnet.pictures import mv_colours
from teamnet.predict import probabilities_of
from teamnet.scores import read as read_scores
from teamnet.sampling import sample_clip
from teamnet.transforms import apply_crop, eval_crops, normalise

SMALL = ["--pretrained", "none", "--iframe-arch", "resnet18", "--num-segments", "4",
         "--input-size", "32", "--batch-size", "8", "--workers", "0", "--val-fraction", "0"]


@pytest.fixture(scope="module")
def trained(motion, tmp_path_factory):
    """A TEAM-Net trained briefly on the moving-patch set: (run folder, motion set)."""
    data, train_list, _ = motion
    run = tmp_path_factory.mktemp("predict") / "run"
    result = CliRunner().invoke(main, ["train", "--data", str(data), "--train-list",
                                       str(train_list), "--output", str(run), "--epochs", "3",
                                       "--lr-steps", "2", *SMALL])
    assert result.exit_code == 0, result.output
    return run, motion


def evaluate_scores(run, data, videos, crops=1):
    """Probabilities of videos through `teamnet evaluate`'s own code path, independently."""
    saved = checkpoint.load(run / "best.pt")
    trained = checkpoint.trained_config(saved, run)
    model = build_model(trained.model, len(saved["classes"]), initialise=False)
    model.load_state_dict(saved["model"])
    dataset = ClipDataset(data, [(v, 0) for v in videos], model.modalities, 25, 32, train=False,
                          crops=crops)
    logits, _ = predict(model, make_loader(dataset, 4, 0, train=False), setup("cpu"))
    return probabilities_of(logits)


@pytest.mark.slow
def test_predict_gives_evaluate_s_scores_on_raw_videos(trained, tmp_path):
    run, (data, _, test_list) = trained
    raw = data.parent / "raw"
    videos = [line.removesuffix(".mp4") for line in test_list.read_text().split()]
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(b"\x1aE\xdf\xa3 not a video at all" * 50)
    one_frame = synthetic.write_video(tmp_path / "one_frame.mkv", synthetic.pan(1, 64, 64, 1, 0))
    result = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"),
                                       "--json", "--top-k", "4", str(raw / "up"), str(broken),
                                       str(one_frame),
                                       *(str(raw / f"{v}.mkv") for v in videos if "up/" not in v)])
    assert result.exit_code == 1  # the broken file is named, every other video done
    assert f"{broken}: " in result.output and "2 file(s) failed" in result.output
    assert f"{one_frame}: 1 video(s) have no P-frame" in result.output
    assert "(a still image: one frame, no motion)" in result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    got = {line["video"]: line["top"] for line in lines}
    classes = load_index(data)["classes"]
    up = sorted(str(p) for p in (raw / "up").glob("*.mkv"))
    assert len(got) == len(videos) + len(up) - sum("up/" in v for v in videos)  # the folder whole
    expected = evaluate_scores(run, data, videos)
    confusion = np.zeros((len(classes), len(classes)), int)
    for video, probabilities in zip(videos, expected):
        top = got[str(raw / f"{video}.mkv")]
        assert [t["class"] for t in top] == [classes[k] for k in probabilities.argsort()[::-1]]
        np.testing.assert_allclose([t["probability"] for t in top],
                                   np.sort(probabilities)[::-1], atol=1e-5)
        confusion[classes.index(video.split("/")[0]), classes.index(top[0]["class"])] += 1
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(run / "best.pt"),
                                       "--list", str(test_list), "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    assert confusion.tolist() == json.loads(result.output.splitlines()[-1])["confusion"]


def test_predict_table_and_three_crops(trained, tmp_path):
    run, (data, _, _) = trained
    video = "down/down15"
    result = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"),
                                       "--crops", "3", "--top-k", "2",
                                       str(data.parent / "raw" / f"{video}.mkv")])
    assert result.exit_code == 0, result.output
    classes = load_index(data)["classes"]
    expected = evaluate_scores(run, data, [video], crops=3)[0]
    first, second = expected.argsort()[::-1][:2]
    lines = result.output.splitlines()
    assert lines[0].endswith("down15.mkv") and len(lines) == 3
    assert lines[1].split() == ["1", classes[first], f"{expected[first]:.2%}"]
    assert lines[2].split() == ["2", classes[second], f"{expected[second]:.2%}"]
    result = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"),
                                       "--cam", str(tmp_path), "--cam-class", "left",
                                       str(data.parent / "raw" / f"{video}.mkv")])
    assert result.exit_code == 1 and "--cam-class 'left' is not a class of" in result.output


def test_the_official_test_views_pick_frames_and_crops_as_their_scripts(trained, tmp_path):
    run, (data, _, test_list) = trained
    def evaluated(*options):
        scores = tmp_path / f"scores{len(list(tmp_path.glob('*.npz')))}.npz"
        result = CliRunner().invoke(main, [
            "evaluate", "--checkpoint", str(run / "best.pt"), "--list", str(test_list),
            "--num-segments", "2", "--confusion", "none", "--json", "--scores", str(scores),
            *options])
        assert result.exit_code == 0, result.output
        return json.loads(result.output.splitlines()[-1])["protocol"], read_scores(scores)
    protocol, coviar = evaluated("--view", "coviar", "--crops", "10")
    assert (protocol["view"], protocol["crops"]) == ("coviar", 10) and "seed" not in protocol
    # independently: the frames CoViAR's test.py picks (tests/reference.py), its 10 crops
    saved = checkpoint.load(run / "best.pt")
    model = build_model(checkpoint.trained_config(saved, run).model, len(saved["classes"]),
                        initialise=False)
    model.load_state_dict(saved["model"])
    model.eval()
    index, reader = load_index(data), ClipReader(data)
    for video, logits in zip(coviar["videos"], coviar["logits"]["fused"]):
        entry = index["by_id"][video]
        picks = np.array([reference.official_coviar_test(entry["frames"], 2, seg, True)
                          for seg in range(2)])
        frames = reader.read(video, picks[:, 0], picks[:, 1] - 1, model.modalities)
        crops = eval_crops(entry["height"], entry["width"], 10, "coviar")
        clip = {m: torch.cat([apply_crop(frames[m], crop, 32, is_mv=m == "mv") for crop in crops])
                .permute(0, 2, 3, 1)[None] for m in model.modalities}
        with torch.no_grad():
            expected = clip_logits(model, clip, 10, setup("cpu"))[0]
        assert np.allclose(logits, expected.numpy(), atol=1e-5), video
    # TEAM-Net's: a random GOP a segment, seeded (the same with any number of loader
    # workers), clips averaged; the seed and clips recorded
    protocol, drawn = evaluated("--view", "team-net", "--clips", "2", "--seed", "1")
    assert (protocol["clips"], protocol["seed"], protocol["input_size"]) == (2, 1, 37)
    again = evaluated("--view", "team-net", "--clips", "2", "--seed", "1", "--workers", "2")[1]
    other = evaluated("--view", "team-net", "--clips", "2", "--seed", "2")[1]
    assert np.allclose(drawn["logits"]["fused"], again["logits"]["fused"], atol=1e-6)
    assert not np.allclose(drawn["logits"]["fused"], other["logits"]["fused"], atol=1e-3)
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(run / "best.pt"),
                                       "--list", str(test_list), "--clips", "2"])
    assert result.exit_code == 1 and "only --view team-net draws clips" in result.output


def test_predict_needs_a_recorded_encoding(trained, tmp_path):
    run, (data, _, _) = trained
    saved = torch.load(run / "best.pt", weights_only=True)
    del saved["data_settings"]
    saved["config"]["data"]["data"] = str(tmp_path / "gone")
    torch.save(saved, tmp_path / "old.pt")
    result = CliRunner().invoke(main, ["predict", "--checkpoint", str(tmp_path / "old.pt"),
                                       str(data.parent / "raw" / "up" / "up00.mkv")])
    assert result.exit_code == 1
    assert "does not record how its videos were encoded" in result.output


def test_mv_colours_show_direction_and_length():
    mv = np.array([[[20, 0], [0, 20], [-20, 0], [0, -20], [0, 0], [5, 0]]], np.int16)
    rgb = mv_colours(mv)[0]
    np.testing.assert_allclose(rgb[0], [1, 0, 0], atol=1e-6)  # right: red, full length
    assert rgb[2][0] == 0 and rgb[2][1] == pytest.approx(1) and rgb[2][2] == pytest.approx(1)
    assert rgb[1][0] > 0.4 and rgb[1][1] == pytest.approx(1) and rgb[1][2] == 0  # down
    assert rgb[3][2] == pytest.approx(1) and rgb[3][1] == 0  # up: violet
    np.testing.assert_allclose(rgb[4], 0)  # still: black
    np.testing.assert_allclose(rgb[5], [0.25, 0, 0], atol=1e-6)  # a quarter of the length


def test_show_draws_a_gop(motion, tmp_path):
    data = motion[0]
    out = tmp_path / "gop.png"
    result = CliRunner().invoke(main, ["show", str(data), "up/up00", "--gop", "1", "--out",
                                       str(out)])
    assert result.exit_code == 0, result.output
    image = imread(out)
    assert image.shape[0] > 300 and image.shape[1] > 900  # 2 bands of 6 pictures
    result = CliRunner().invoke(main, ["show", str(data), "up/up00", "--gop", "4"])
    assert result.exit_code == 1 and "has 4 GOPs, numbered 0 to 3" in result.output
    result = CliRunner().invoke(main, ["show", str(data), "up/none"])
    assert result.exit_code == 1 and "no video 'up/none'" in result.output


@pytest.mark.slow
def test_mv_class_activation_maps_find_the_moving_patch(tmp_path_factory):
    # The MV branch alone (TSN on MVs) at 128 px: its 4x4 map is the finest CPU-sized one.
    root = tmp_path_factory.mktemp("cam")
    data, train_list, test_list = motion_dataset.build(root, "patch", size=128)
    run, size, side = root / "run", 128, round(128 * motion_dataset.PATCH)
    result = CliRunner().invoke(main, [
        "train", "--data", str(data), "--train-list", str(train_list), "--output", str(run),
        "--model", "tsn", "--modality", "mv", "--epochs", "12", "--lr-steps", "9",
        *SMALL, "--input-size", str(size)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, [
        "evaluate", "--checkpoint", str(run / "best.pt"), "--list", str(test_list),
        "--num-segments", "8", "--workers", "0", "--cam", str(root / "cams"), "--cam-videos", "2",
        "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.splitlines()[-1])
    assert report["top1"] >= 0.9, report["per_class"]
    pictures = sorted((root / "cams").iterdir())
    assert [p.name for p in pictures] == ["still__still12.png", "still__still13.png"]
    # a column a GOP: the 8 segments of a 48-frame video fall on its 4 GOPs, each shown once
    # (1.6 inches a column and 1.6 for the labels and colour bar, at 100 dpi)
    assert imread(pictures[0]).shape[1] == (4 * 1.6 + 1.6) * 100

    # where the maximum of the MV map is, in frame pixels, for the centre GOPs' 5th P-frames
    saved = checkpoint.load(run / "best.pt")
    model = build_model(checkpoint.trained_config(saved, run).model, 4, initialise=False)
    model.load_state_dict(saved["model"])
    index, boxes = load_index(data), json.loads((root / "boxes.json").read_text())
    videos = [v.removesuffix(".mp4") for v in test_list.read_text().split()
              if not v.startswith("still")]  # a still patch has no motion to find
    dataset = ClipDataset(data, [(v, 0) for v in videos], ("mv",), 8, size, train=False)
    crop = eval_crops(size, size)[0]
    hits = []
    for i, video in enumerate(videos):
        clip, _, _ = dataset[(0, i)]
        _, _, maps = class_maps(model, {"mv": clip["mv"][None]}, setup("cpu"))
        cams = F.interpolate(maps["mv"][0][:, None], size=(size, size), mode="bilinear")[:, 0]
        gops, slots = sample_clip(index["by_id"][video]["p_frames"], 8, True)
        for cam, gop, slot in zip(cams, gops, slots):
            x0, y0 = boxes[video][12 * gop + 1 + slot]  # the patch in that P-frame
            y, x = np.unravel_index(int(cam.argmax()), cam.shape)
            x, y = crop.x + (x + 0.5) * crop.width / size, crop.y + (y + 0.5) * crop.height / size
            hits.append((x - x0) % size < side and (y - y0) % size < side)  # it wraps around
    # measured: 0.875 of 144 segments; a point drawn at random would be inside 0.14 of the time
    assert np.mean(hits) >= 0.8, np.mean(hits)


@pytest.mark.parametrize("name", ["teamnet", "coviar", "tsn"])
def test_class_maps_add_up_to_the_logits(name):
    # exact CAMs: each branch's map, averaged over segments and space, plus its bias (times
    # the fusion weights) summed over branches is the model's logit for the class
    torch.manual_seed(0)
    model = build_model(ModelConfig(model=name, iframe_arch="resnet18", pretrained="none"), 5)
    model.eval()
    clips = {"iframe": torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8),
             "mv": torch.randint(-30, 30, (2, 3, 64, 64, 2), dtype=torch.int8),
             "residual": torch.randint(-60, 60, (2, 3, 64, 64, 3), dtype=torch.int8)}
    clips = {m: clips[m] for m in model.modalities}
    probabilities, labels, maps = class_maps(model, clips, setup("cpu"), labels=[1, 3])
    with torch.no_grad():
        logits = model(normalise(clips, "cpu"))["logits"][torch.arange(2), labels]
        bias = sum(model.fusion_weights[m] * model.heads[m].fc.bias[labels] for m in maps)
    assert sorted(maps) == sorted(model.modalities) and maps[model.modalities[0]].shape == (2, 3, 2, 2)
    torch.testing.assert_close(sum(x.mean(dim=(1, 2, 3)) for x in maps.values()) + bias, logits,
                               atol=1e-4, rtol=1e-4)
    assert probabilities.shape == (2, 5) and labels.tolist() == [1, 3]


def test_pictures_that_cannot_be_written_cost_no_numbers(trained, tmp_path):
    run, (data, _, test_list) = trained
    too_long = tmp_path / ("c" * 300 + ".png")  # no file system takes such a name
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(run / "best.pt"),
                                       "--list", str(test_list), "--workers", "0",
                                       "--confusion", str(too_long), "--json"])
    assert result.exit_code == 0, result.output
    assert f"warning: could not write {too_long}: File name too long" in result.output
    report = json.loads(result.output.splitlines()[-1])
    assert "confusion_image" not in report and 0 <= report["top1"] <= 1
    assert f"top-1 {report['top1']:.2%}" in result.output
    (tmp_path / "cams" / "down15.png").mkdir(parents=True)  # the picture's name is taken
    video = data.parent / "raw" / "down" / "down15.mkv"
    result = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"),
                                       "--cam", str(tmp_path / "cams"), "--top-k", "2", str(video)])
    assert result.exit_code == 0, result.output
    assert f"warning: could not write {tmp_path / 'cams' / 'down15.png'}: Is a directory" in \
        result.output
    lines = result.output.splitlines()
    scores = [line.split()[0] for line in lines if not line.startswith("warning")]
    assert lines[0] == str(video) and scores[1:] == ["1", "2"]  # the scores all the same


def test_predict_removes_only_the_work_folders_no_live_run_holds(trained, tmp_path,
                                                                   monkeypatch):
    # two containers share /tmp and a host name: the other's live run has a pid that does
    # not exist here, so only its folder's lock (an flock, held across PID namespaces) can
    # show that it is alive
    import socket
    import tempfile
    run, (data, _, _) = trained
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a PID namespace needs unshare and root")
    process = subprocess.Popen(["true"])
    process.wait()
    tmp = tmp_path / "tmp"  # predict's $TMPDIR
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    tag = f"teamnet-predict-{socket.gethostname()}-{process.pid}"  # a pid gone here
    dead, other, young = (tmp / f"{tag}-{name}" for name in ("killed", "held", "young"))
    stranger = tmp / "teamnet-predict-speed-benchmark"  # someone else's, of a like name
    for folder in (dead, other, young, stranger):
        folder.mkdir()
        (folder / "video.mp4").write_bytes(b"work")
        if folder is not stranger:
            (folder / ".teamnet-predict-work").touch()  # what a work folder holds
    for folder in (dead, other, stranger):  # older than the grace a new folder is given
        os.utime(folder, (time.time() - 3600, time.time() - 3600))
    holder = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c",
         "import fcntl, os, sys; d = os.open(sys.argv[1], os.O_RDONLY); "
         "fcntl.flock(d, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         str(other)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if holder.stdout.readline().strip() != "held":
            pytest.skip("cannot start a process in a new PID namespace here")
        result = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"),
                                           str(data.parent / "raw" / "up" / "up00.mkv")])
        assert result.exit_code == 0, result.output
        # the killed run's folder is gone, and predict's own; the live, young and unmarked
        # ones are kept
        assert sorted(tmp.iterdir()) == sorted([other, stranger, young])
        assert (other / "video.mp4").read_bytes() == b"work"
    finally:
        holder.kill()
        holder.wait()


def test_evaluate_says_when_the_data_are_not_the_checkpoint_s_kind(trained, tmp_path):
    run, (data, _, test_list) = trained
    other = tmp_path / "strided"
    result = CliRunner().invoke(main, ["extract", str(data.parent / "encoded"), str(other),
                                       "--p-stride", "4"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(run / "best.pt"),
                                       "--data", str(other), "--list", str(test_list),
                                       "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert (f"warning: {other} was encoded or extracted otherwise than the data "
            f"{run / 'best.pt'} was trained on (p_stride 1 -> 4)") in result.output
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(run / "best.pt"),
                                       "--list", str(test_list), "--workers", "0"])
    assert result.exit_code == 0 and "warning" not in result.output


@pytest.mark.parametrize("needs_p_frames", [True, False])
def test_the_gops_predict_keeps_give_the_same_clip(needs_p_frames):
    # predict keeps only the GOPs of a video's clip in memory: the clip of those alone must
    # be the clip of the whole video, for every length and number of segments
    for gops in range(1, 70):
        for last in (0, 4, 11):  # the last GOP: a lone I-frame, short, or whole
            num_p = np.array([11] * (gops - 1) + [last])
            if needs_p_frames and not num_p.any():
                continue
            for segments in (1, 3, 8, 25, 40):
                full = sample_clip(num_p, segments, needs_p_frames)
                kept = sorted(set(full[0].tolist()))
                part = sample_clip(num_p[kept], segments, needs_p_frames)
                np.testing.assert_array_equal(np.array(kept)[part[0]], full[0])
                np.testing.assert_array_equal(part[1], full[1])


def test_a_long_video_is_represented_by_its_clip_s_gops_alone(tmp_path, ffmpeg_binary):
    from preprocess.encode import encode_video
    from preprocess.in_memory import extract_in_memory
    from preprocess.settings import EncodeSettings
    source = synthetic.write_video(tmp_path / "long.mkv", synthetic.pan(600, 48, 64, 1, 0))
    settings = EncodeSettings(size=(64, 48), ffmpeg=ffmpeg_binary)
    assert encode_video(source, tmp_path / "long.mp4", settings).status == "encoded"
    recorded = {"storage": "int8", "p_stride": 1, "encode": {"gop": 12}}
    file, index = extract_in_memory(tmp_path / "long.mp4", recorded, lambda counts: {3, 49})
    with file:  # 50 GOPs decoded, 2 kept
        assert file["videos/00000/iframes"].shape[0] == 2
        assert index["by_id"]["video"]["p_frames"] == [11, 11]
        assert index["by_id"]["video"]["frames"] == 600
        kept = file["videos/00000/mvs"][1]
    whole, _ = extract_in_memory(tmp_path / "long.mp4", recorded)
    with whole:
        np.testing.assert_array_equal(whole["videos/00000/mvs"][49], kept)


# --- predicting at scale: workers, batches, a results file, stored and encoded input ------

def predicted(output):
    """{video: [probabilities in class order]} of predict's JSON lines (or --output file)."""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return {line["video"]: {t["class"]: t["probability"] for t in line["top"]}
            for line in lines if "top" in line}


def test_workers_and_batches_give_evaluate_s_scores(trained, tmp_path):
    run, (data, _, test_list) = trained
    videos = [line.strip()[:-len(".mp4")] for line in test_list.read_text().splitlines()][:10]
    classes = load_index(data)["classes"]
    expected = evaluate_scores(run, data, videos)
    raw = [data.parent / "raw" / f"{video}.mkv" for video in videos]
    result = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"), "--json",
                                       "--top-k", "4", "--workers", "2", "--batch-size", "3",
                                       *map(str, raw)])
    assert result.exit_code == 0, result.output
    got = predicted(result.stdout)
    assert sorted(got) == sorted(map(str, raw))  # every video once, in any order
    for path, probabilities in zip(raw, expected):
        np.testing.assert_allclose([got[str(path)][c] for c in classes], probabilities,
                                   atol=1e-5)
    # the extracted dataset itself (`evaluate` without labels), and the encoded files as stored
    for source in (["--data", str(data), "--list", str(test_list)],
                   [str(data.parent / "encoded" / f"{video}.mp4") for video in videos]):
        result = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"),
                                           "--json", "--top-k", "4", "--workers", "1", *source])
        assert result.exit_code == 0, result.output
        got = predicted(result.stdout)
        names = videos if "--data" in source else source
        for name, probabilities in zip(names, expected):
            np.testing.assert_allclose([got[name][c] for c in classes], probabilities,
                                       atol=1e-6)


def test_encoded_input_is_not_encoded_again(trained, tmp_path, ffmpeg_binary, monkeypatch):
    run, (data, _, _) = trained
    log = tmp_path / "ffmpeg-runs.txt"
    wrapper = tmp_path / "ffmpeg"  # the real ffmpeg, each run counted
    wrapper.write_text(f'#!/bin/sh\necho run >> "{log}"\nexec "{ffmpeg_binary}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("TEAMNET_FFMPEG", str(wrapper))
    encoded = sorted((data.parent / "encoded" / "up").glob("*.mp4"))[:3]
    raw = [data.parent / "raw" / "up" / f"{path.stem}.mkv" for path in encoded]
    for paths, runs in ((encoded, 0), (raw, 3)):
        log.unlink(missing_ok=True)
        result = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"),
                                           "--json", "--workers", "0", *map(str, paths)])
        assert result.exit_code == 0, result.output
        assert len(predicted(result.stdout)) == 3
        assert (len(log.read_text().splitlines()) if log.exists() else 0) == runs


def test_a_results_file_resumes_after_a_kill_and_refuses_another_protocol(trained, tmp_path):
    run, (data, _, _) = trained
    raw = sorted(str(p) for p in (data.parent / "raw").glob("*/*.mkv"))[:12]
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(b"\x1aE\xdf\xa3 not a video at all" * 50)
    videos = [*raw[:6], str(broken), *raw[6:]]
    output = tmp_path / "scores.jsonl"
    command = [TEAMNET_CLI, "predict", "--checkpoint", str(run / "best.pt"), "--output",
               str(output), "--workers", "1", "--batch-size", "1", *videos]
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (
            not output.exists() or len(output.read_bytes().splitlines()) < 4):
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    first = output.read_bytes()
    assert 4 <= len(first.splitlines()) < 1 + len(videos)  # cut short
    with open(output, "ab") as file:  # as if the kill had cut a line in two
        file.write(b'{"video": "torn')
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 1  # the broken file is named
    assert f"{broken}: " in resumed.stderr and "already in" in resumed.stderr
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert list(lines[0]) == ["teamnet_predict"]
    assert sorted(line["video"] for line in lines[1:]) == sorted(videos)  # each once
    assert [(line["video"], line["path"]) for line in lines[1:] if "error" in line] == [
        (str(broken), str(broken.resolve()))]  # the one failure, once
    assert len(predicted(output.read_text())) == len(raw)
    other = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"),
                                      "--output", str(output), "--num-segments", "8", raw[0]])
    assert other.exit_code == 1 and "num_segments 25 there, 8 here" in other.output
    again = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"),
                                      "--output", str(output), "--retry-failed", *videos])
    assert again.exit_code == 1 and f"{len(raw)} video(s) already in" in again.output
    assert sum('"error"' in line for line in output.read_text().splitlines()) == 1


def test_ctrl_c_says_what_was_done_and_how_to_go_on(trained, tmp_path):
    run, (data, _, _) = trained
    videos = sorted(str(p) for p in (data.parent / "raw").glob("*/*.mkv"))[:12]
    output = tmp_path / "scores.jsonl"
    command = [TEAMNET_CLI, "predict", "--checkpoint", str(run / "best.pt"), "--output",
               str(output), "--workers", "2", "--batch-size", "1", *videos]
    # a terminal's Ctrl-C: SIGINT to the whole process group, workers and ffmpeg included;
    # as from a terminal, SIGINT acts (a suite started in the background of a shell without
    # job control inherits it ignored, and so would predict: it then ran to its end)
    stopped = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (
            not output.exists() or len(output.read_bytes().splitlines()) < 3):
        time.sleep(0.02)
    os.killpg(stopped.pid, signal.SIGINT)
    out, err = stopped.communicate(timeout=120)
    done = len(output.read_bytes().splitlines()) - 1
    assert stopped.returncode == 130, err
    assert 2 <= done < len(videos)
    assert err.splitlines()[-1] == (f"interrupted: {done} of {len(videos)} videos done, rerun "
                                    "with the same --output to continue")
    for noise in ("Traceback", "Warning", "Aborted"):
        assert noise not in out + err
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and f"{done} video(s) already in" in rerun.stderr
    assert sorted(predicted(output.read_text())) == sorted(videos)


@pytest.mark.slow
def test_windows_of_two_joined_clips_are_the_clips_scores(motion, tmp_path):
    import av
    data, train_list, test_list = motion
    run = tmp_path / "run"  # trained as far as the motion tests do (top-1 >= 0.9)
    result = CliRunner().invoke(main, ["train", "--data", str(data), "--train-list",
                                       str(train_list), "--output", str(run), "--epochs", "14",
                                       "--lr-steps", "10", *SMALL])
    assert result.exit_code == 0, result.output
    raw = data.parent / "raw"
    candidates = [raw / f"{line.strip()[:-len('.mp4')]}.mkv"
                  for line in test_list.read_text().splitlines()]
    alone = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"), "--json",
                                      "--top-k", "4", "--workers", "0",
                                      *map(str, candidates)])
    scores = predicted(alone.stdout)
    top = {path: max(scores[str(path)], key=scores[str(path)].get) for path in candidates}
    first = candidates[0]  # and a clip the model takes for another class
    second = next(path for path in candidates if top[path] != top[first])
    frames = []
    for clip in (first, second):
        with av.open(str(clip)) as container:
            frames += [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    joined = synthetic.write_video(tmp_path / "joined.mkv", np.stack(frames))  # lossless
    seconds = len(frames) / 2 / 25  # one clip a window (25 fps)
    result = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"), "--json",
                                       "--top-k", "4", "--workers", "2", "--window",
                                       str(seconds), "--timeline", str(tmp_path / "timeline"),
                                       "--output", str(tmp_path / "windows.jsonl"), str(joined)])
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(text) for text in result.stdout.splitlines() if text.startswith("{")]
    windows = line["windows"]
    assert [(w["start"], w["end"]) for w in windows] == [(0, seconds), (seconds, 2 * seconds)]
    for window, clip in zip(windows, (first, second)):
        got = {t["class"]: t["probability"] for t in window["top"]}
        for name, probability in scores[str(clip)].items():
            assert got[name] == pytest.approx(probability, abs=1e-5)
    assert windows[0]["top"][0]["class"] != windows[1]["top"][0]["class"]
    assert (tmp_path / "timeline" / "joined.png").stat().st_size > 2000
    saved = [json.loads(text) for text in (tmp_path / "windows.jsonl").read_text().splitlines()]
    assert saved[1] == line and saved[0]["teamnet_predict"]["window"] == seconds


def test_exports_give_the_checkpoint_s_logits(trained, tmp_path):
    run, (data, _, test_list) = trained
    from teamnet.export import Deployed, read_metadata
    saved = checkpoint.load(run / "best.pt")
    trained_config = checkpoint.trained_config(saved, run)
    model = build_model(trained_config.model, len(saved["classes"]), initialise=False)
    model.load_state_dict(saved["model"])
    model.eval()
    videos = [line.strip()[:-len(".mp4")] for line in test_list.read_text().splitlines()][:3]
    dataset = ClipDataset(data, [(v, 0) for v in videos], model.modalities, 6, 32, train=False)
    clips = tuple(torch.stack([dataset[(0, i)][0][m] for i in range(3)])
                  for m in model.modalities)  # real clips, as the loader makes them
    with torch.no_grad():
        expected = model(normalise(dict(zip(model.modalities, clips)), "cpu"))["logits"]
    for suffix in (".pt2", ".onnx"):
        out = tmp_path / f"model{suffix}"
        result = CliRunner().invoke(main, ["export", "--checkpoint", str(run / "best.pt"),
                                           "--out", str(out), "--num-segments", "6"])
        assert result.exit_code == 0, result.output
        assert out.is_file() and not list(tmp_path.glob(".*"))  # nothing left beside it
        if suffix == ".pt2":
            got = torch.export.load(out).module()(*clips)
        else:
            import onnxruntime
            session = onnxruntime.InferenceSession(str(out))
            got = torch.from_numpy(session.run(None, {
                name: x.numpy() for name, x in zip(model.modalities, clips)})[0])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        assert isinstance(Deployed(model, 1), torch.nn.Module)
        about = read_metadata(out)  # what serving needs, in the file itself
        assert about["classes"] == saved["classes"] and about["model"] == "teamnet"
        assert about["protocol"] == {"num_segments": 6, "crops": 1, "input_size": 32,
                                     "view": "tsn"}
        assert [(i["name"], i["dtype"], i["shape"]) for i in about["inputs"]] == [
            (m, str(x.dtype).removeprefix("torch."), ["batch", 6, 32, 32, x.shape[-1]])
            for m, x in zip(model.modalities, clips)]
        assert about["data_settings"] == saved["data_settings"]
    small = tmp_path / "small.pt"
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(run / "best.pt"),
                                       "--out", str(small)])
    assert result.exit_code == 0, result.output
    assert small.stat().st_size < 0.6 * (run / "best.pt").stat().st_size  # no momentum
    scores = [CliRunner().invoke(main, ["evaluate", "--checkpoint", str(path), "--data",
                                        str(data), "--list", str(test_list), "--workers", "0",
                                        "--json"]) for path in (run / "best.pt", small)]
    assert all(s.exit_code == 0 for s in scores), scores[1].output
    reports = [json.loads(s.output.splitlines()[-1]) for s in scores]
    assert reports[0]["confusion"] == reports[1]["confusion"]
    assert reports[0]["top1"] == reports[1]["top1"]


def test_export_never_replaces_a_training_checkpoint_or_a_file_not_its_own(trained, tmp_path):
    run, _ = trained
    best, last = run / "best.pt", tmp_path / "other-run" / "last.pt"  # best: a link to last
    last.parent.mkdir()
    shutil.copyfile(run / "last.pt", last)
    before = {path: path.read_bytes() for path in (last, best)}
    notes = tmp_path / "notes.pt2"
    notes.write_text("my notes")
    for checkpoint_path, out, message in (
            (best, run / "last.pt", "is the checkpoint being exported"),
            (best, best, "is the checkpoint being exported"),
            (best, last, "is a training checkpoint (it holds optimizer state"),
            (best, notes, "already holds a file that is not an export of teamnet")):
        result = CliRunner().invoke(main, ["export", "--checkpoint", str(checkpoint_path),
                                           "--out", str(out)])
        assert result.exit_code == 1 and message in result.output, result.output
    assert {path: path.read_bytes() for path in (last, best)} == before
    assert notes.read_text() == "my notes"
    small = tmp_path / "small.pt"  # an earlier export is replaced
    for _ in range(2):
        result = CliRunner().invoke(main, ["export", "--checkpoint", str(best), "--out",
                                           str(small)])
        assert result.exit_code == 0, result.output
    assert "optimizer" not in checkpoint.load(small)


def test_evaluate_prints_its_numbers_when_the_scores_cannot_be_written(trained, tmp_path):
    run, (data, _, test_list) = trained
    with small_disk(tmp_path / "disk", "64k") as disk:
        fill(disk)
        result = CliRunner().invoke(main, [
            "evaluate", "--checkpoint", str(run / "best.pt"), "--list", str(test_list),
            "--workers", "0", "--confusion", "none", "--scores", str(disk / "s.npz")])
        assert sorted(path.name for path in disk.iterdir()) == ["filler"]
    assert result.exit_code == 1
    error = (f"error: could not write the scores to {disk / 's.npz'}: no space left on "
             "device; the numbers above are whole")
    assert error in result.output and "top-1 " in result.output
    assert result.output.index("top-1 ") < result.output.index(error)


def test_results_are_keyed_by_the_file_not_the_name_typed(trained, tmp_path, monkeypatch):
    run, (data, _, _) = trained
    raw = sorted((data.parent / "raw").glob("*/*.mkv"))
    for day, source in (("day1", raw[0]), ("day2", raw[5])):  # one name, two files
        (tmp_path / day).mkdir()
        shutil.copyfile(source, tmp_path / day / "upload.mkv")
    output = tmp_path / "same.jsonl"

    def predict(*args):
        return CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"),
                                         "--output", str(output), "--workers", "0", *args])

    monkeypatch.chdir(tmp_path / "day1")
    assert predict("upload.mkv").exit_code == 0
    monkeypatch.chdir(tmp_path / "day2")
    result = predict("upload.mkv")
    assert result.exit_code == 0 and "already in" not in result.output
    upload = tmp_path / "day2" / "upload.mkv"
    shutil.copyfile(raw[9], upload)  # replaced at a known path
    os.utime(upload, ns=(1, 1))
    result = predict("upload.mkv")
    assert result.exit_code == 0 and "already in" not in result.output
    lines = [json.loads(line) for line in output.read_text().splitlines()[1:]]
    assert [line["path"] for line in lines] == [str(tmp_path / "day1" / "upload.mkv"),
                                                str(upload), str(upload)]
    assert "changed" not in lines[1] and "the file changed since" in lines[2]["changed"]
    assert lines[2]["source"] == f"{upload.stat().st_size}:1"
    assert "already in" in predict("upload.mkv").output  # now it is


def test_a_video_with_a_failed_window_is_failed_until_retried(trained, tmp_path):
    run, (data, _, _) = trained
    clip = sorted((data.parent / "raw").glob("*/*.mkv"))[0]
    output = tmp_path / "windows.jsonl"
    command = ["predict", "--checkpoint", str(run / "best.pt"), "--output", str(output),
               "--window", "1", "--workers", "0", str(clip)]
    assert CliRunner().invoke(main, command).exit_code == 0
    header, line = output.read_text().splitlines()
    record = json.loads(line)  # as a truncated download leaves it: its last window failed
    record["windows"][-1] = {**record["windows"][-1], "error": "decoding failed"}
    del record["windows"][-1]["top"]
    output.write_text(header + "\n" + json.dumps(record) + "\n")
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 1 and "failed in an earlier run (add --retry-failed" in again.output
    retried = CliRunner().invoke(main, [*command, "--retry-failed"])
    assert retried.exit_code == 0, retried.output
    lines = output.read_text().splitlines()
    assert len(lines) == 2 and "error" not in lines[1]


def test_a_window_table_shows_the_top_k_and_the_joined_rest(trained, tmp_path, monkeypatch):
    run, _ = trained
    (tmp_path / "uploads").mkdir()
    synthetic.write_video(tmp_path / "uploads" / "four.mkv", synthetic.pan(100, 64, 64, 2, 0))
    output = tmp_path / "windows.jsonl"
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [
        "predict", "--checkpoint", str(run / "best.pt"), "--window", "3", "--top-k", "2",
        "--workers", "0", "--output", str(output), "uploads"])  # a folder, typed relative
    assert result.exit_code == 0, result.output
    line = json.loads(output.read_text().splitlines()[1])
    assert line["video"] == "uploads/four.mkv" == result.output.splitlines()[0]  # as given
    (window,) = line["windows"]  # a 4 s clip: one window, 0-4 s
    assert (window["start"], window["end"]) == (0, 4)
    first, second = window["top"]
    rows = [line.split() for line in result.output.splitlines() if "%" in line]
    assert rows == [["0.0", "-", "4.0", "s", "1", first["class"], f"{first['probability']:.2%}"],
                    ["2", second["class"], f"{second['probability']:.2%}"]]
    assert ("(the last 1.0 s, less than a window, joined the last window: 0.0 - 4.0 s)"
            in result.output)


def test_timelines_of_two_inputs_of_one_name_are_two_pictures(trained, tmp_path):
    run, (data, _, _) = trained
    raw = sorted((data.parent / "raw").glob("*/*.mkv"))
    for folder, source in (("a", raw[0]), ("b", raw[7])):
        (tmp_path / folder).mkdir()
        shutil.copyfile(source, tmp_path / folder / "clip.mkv")
    result = CliRunner().invoke(main, [
        "predict", "--checkpoint", str(run / "best.pt"), "--window", "1", "--workers", "0",
        "--timeline", str(tmp_path / "strips"), str(tmp_path / "a" / "clip.mkv"),
        str(tmp_path / "b" / "clip.mkv")])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "strips").iterdir()) == [
        "a__clip.png", "b__clip.png"]


def test_the_guide_serves_an_onnx_export_as_predict_scores_it(trained, tmp_path, monkeypatch):
    run, (data, _, _) = trained
    video = sorted((data.parent / "raw").glob("*/*.mkv"))[3]
    shutil.copyfile(video, tmp_path / "clip.mp4")  # the names the guide's block uses
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(run / "best.pt"), "--out",
                                       str(tmp_path / "model.onnx")])
    assert result.exit_code == 0, result.output
    guide = (Path(__file__).parent.parent / "docs" / "GUIDE.md").read_text()
    block = guide.split("## Serving an exported model")[1].split("```python\n")[1]
    monkeypatch.chdir(tmp_path)
    served = {}
    exec(block.split("```")[0], served)  # noqa: S102 - the guide's own example
    result = CliRunner().invoke(main, ["predict", "--checkpoint", str(run / "best.pt"), "--json",
                                       "--top-k", "4", "--workers", "0",
                                       str(tmp_path / "clip.mp4")])
    assert result.exit_code == 0, result.output
    expected = {top["class"]: top["probability"]
                for top in json.loads(result.stdout.splitlines()[-1])["top"]}
    assert len(served["classes"]) == len(expected) == 4
    for name, probability in zip(served["classes"], served["probabilities"][0]):
        assert probability == pytest.approx(expected[name], abs=1e-5)


def test_init_from_takes_every_weight_from_the_checkpoint_and_heads_only_for_its_classes(
        trained, tmp_path, monkeypatch):
    run, (data, train_list, _) = trained
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))  # offline: nothing cached
    options = ["--init-from", str(run / "best.pt"), "--epochs", "1", "--lr-steps", "1",
               *SMALL[2:]]  # with the default --pretrained (ImageNet): never fetched
    same = tmp_path / "same"
    result = CliRunner().invoke(main, ["train", "--data", str(data), "--train-list",
                                       str(train_list), "--output", str(same), *options])
    assert result.exit_code == 0, result.output
    assert "its classes are this run's: heads kept" in result.output
    assert json.loads((same / "init_from.json").read_text())["fresh"] == []
    # the same number of classes under other names: new heads, never old class k as new k
    renamed = tmp_path / "renamed"
    shutil.copytree(data, renamed)
    index = load_index(data)
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{video['id']},other-{video['class']}\n"
                              for video in index["videos"]))
    assert CliRunner().invoke(main, ["index", str(renamed), "--labels", str(labels)]
                              ).exit_code == 0
    other = tmp_path / "other"
    result = CliRunner().invoke(main, ["train", "--data", str(renamed), "--output", str(other),
                                       *options])
    assert result.exit_code == 0, result.output
    assert "classes are not this run's 4: heads new" in result.output
    record = json.loads((other / "init_from.json").read_text())
    assert "heads" not in record["loaded"] and len(record["fresh"]) == 2 * 3
    # another network: one line naming both, before anything is written
    result = CliRunner().invoke(main, ["train", "--data", str(data), "--output",
                                       str(tmp_path / "bigger"), *options,
                                       "--iframe-arch", "resnet34"])
    assert result.exit_code == 1
    assert "iframe_arch 'resnet18' there, 'resnet34' here" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "bigger").exists()
