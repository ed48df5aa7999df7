"""Nothing written is silently lost, damaged or misread: concurrent runs, full disks, damaged
and hostile files, inputs that are wrong but quiet, and resumed runs with changed options."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import synthetic
from disks import grow, small_disk
from cli import main
from preprocess import store
from preprocess.lock import folder_lock
from teamnet import checkpoint

TEAMNET = [sys.executable, "-c", "import cli; cli.main()"]
ROOT = Path(__file__).parent.parent
SMALL = ["--pretrained", "none", "--iframe-arch", "resnet18", "--num-segments", "2",
         "--input-size", "32", "--batch-size", "2", "--workers", "0", "--val-fraction", "0"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def teamnet(*args, **kwargs):
    return subprocess.Popen([*TEAMNET, *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def make_raw(root, names=("walk/a.mkv", "walk/b.mkv", "run/c.mkv", "run/d.mkv"), frames=25):
    for n, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        synthetic.write_video(root / name, synthetic.pan(frames, 64, 96, 1 + n % 3, n % 2, seed=n))
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """(raw, encoded, extracted) folders of four small videos in two classes, one a shard."""
    root = tmp_path_factory.mktemp("reliable")
    raw = make_raw(root / "raw")
    assert invoke("encode", raw, root / "enc", "--size", "96x64").exit_code == 0
    assert invoke("extract", root / "enc", root / "ext", "--shard-size", "1").exit_code == 0
    return raw, root / "enc", root / "ext"


def copy(folder, target):
    shutil.copytree(folder, target)
    return target


def same_data(first, second):
    assert store.list_videos(first) == store.list_videos(second)
    for video_id in store.list_videos(first):
        a, b = store.read_video(first, video_id), store.read_video(second, video_id)
        for key in ("iframes", "mvs", "residuals", "num_p"):
            np.testing.assert_array_equal(a[key], b[key])


# --- concurrent runs ----------------------------------------------------------------------

def test_two_extractions_at_once_never_lose_a_video(dataset, tmp_path):
    _, encoded, clean = dataset
    runs = [teamnet("extract", encoded, tmp_path / "out", "--shard-size", "1") for _ in range(2)]
    outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    for code, err in outcomes:
        assert "Traceback" not in err, err
        assert code == 0 or (code == 1 and "is in use by another teamnet run" in err), err
    assert any(code == 0 for code, _ in outcomes)
    same_data(clean, tmp_path / "out")


def test_a_held_folder_is_refused_with_the_holder_named(dataset, tmp_path):
    raw, encoded, extracted = dataset
    with folder_lock(tmp_path / "busy"):
        for args in (["encode", raw, tmp_path / "busy"], ["extract", encoded, tmp_path / "busy"]):
            result = invoke(*args)
            assert result.exit_code == 1, result.output
            assert "is in use by another teamnet run" in result.output
            assert f"pid {os.getpid()}" in result.output
    held = copy(extracted, tmp_path / "held")
    with folder_lock(held):
        assert "in use" in invoke("index", held).output
    with folder_lock(tmp_path / "run"):
        result = invoke("train", "--data", extracted, "--output", tmp_path / "run", *SMALL)
        assert result.exit_code == 1 and "in use by another teamnet run" in result.output


def test_parts_run_side_by_side_but_a_whole_run_waits(dataset, tmp_path):
    _, encoded, clean = dataset
    out = tmp_path / "parts"
    with folder_lock(out, part=(1, 2)):
        result = invoke("extract", encoded, out, "--part", "2/2", "--shard-size", "1")
        assert result.exit_code == 0, result.output  # the other part: fine
        for args in (["--part", "1/2"], []):  # the same part, or the whole folder: refused
            result = invoke("extract", encoded, out, *args)
            assert result.exit_code == 1 and "in use" in result.output, result.output
    assert invoke("extract", encoded, out, "--part", "1/2", "--shard-size", "1").exit_code == 0
    assert invoke("index", out).exit_code == 0
    same_data(clean, out)


# --- full disks (a tmpfs of a few MB; needs root to mount) --------------------------------

def test_extract_onto_a_full_disk_fails_cleanly_and_resumes(dataset, tmp_path):
    _, encoded, clean = dataset
    with small_disk(tmp_path / "disk", "3m") as disk:
        run = teamnet("extract", encoded, disk / "out", "--shard-size", "1")
        _, err = run.communicate(timeout=300)
        assert run.returncode == 1, err
        assert "Traceback" not in err and "Segmentation" not in err
        failed = [line for line in err.splitlines() if "no space left on device" in line]
        assert failed and all(".mp4" in line for line in failed), err
        assert not list((disk / "out").glob(".*partial"))  # nothing half-written left
        for shard in (disk / "out").glob(store.SHARD_GLOB):  # what is there is whole
            store.read_shard(shard)
        grow(disk, "64m")
        assert invoke("extract", encoded, disk / "out", "--shard-size", "1").exit_code == 0
        same_data(clean, disk / "out")


def test_encode_onto_a_full_disk_names_every_failure(dataset, tmp_path):
    raw, _, _ = dataset
    with small_disk(tmp_path / "disk", "16k") as disk:
        (disk / "enc" / "encode-report.json").mkdir(parents=True)  # and the report cannot be written
        result = invoke("encode", raw, disk / "enc", "--size", "96x64")
        assert result.exit_code == 1, result.output
        assert "could not write" in result.output and "encode-report.json" in result.output
        for name in ("a.mkv", "b.mkv", "c.mkv", "d.mkv"):
            assert any(name in line and ("no space" in line.lower() or "ffmpeg failed" in line)
                       for line in result.output.splitlines()), result.output
        assert not list((disk / "enc").rglob(".*partial"))


def test_a_checkpoint_that_does_not_fit_leaves_the_previous_one(tmp_path):
    with small_disk(tmp_path / "disk", "1m") as disk:
        checkpoint.save(disk / "last.pt", {"weights": torch.zeros(1000)})
        with pytest.raises(checkpoint.CheckpointError, match="no space left on device"):
            checkpoint.save(disk / "last.pt", {"weights": torch.zeros(1_000_000)})
        assert [p.name for p in disk.iterdir()] == ["last.pt"]
        assert checkpoint.load(disk / "last.pt", check=False)["weights"].shape == (1000,)


def test_best_checkpoint_takes_no_second_copy_and_keeps_its_content(tmp_path):
    # A TEAM-Net checkpoint is about 270 MB: best.pt is last.pt's file, not a copy of it,
    # until the next save of last.pt, which must leave best.pt as it was.
    checkpoint.save(tmp_path / "last.pt", {"weights": torch.ones(1000)})
    checkpoint.save_as(tmp_path / "best.pt", tmp_path / "last.pt")
    assert os.path.samefile(tmp_path / "best.pt", tmp_path / "last.pt")
    checkpoint.save(tmp_path / "last.pt", {"weights": torch.zeros(1000)})
    assert checkpoint.load(tmp_path / "best.pt", check=False)["weights"].sum() == 1000
    assert checkpoint.load(tmp_path / "last.pt", check=False)["weights"].sum() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


# --- damaged and hostile files --------------------------------------------------------------

def flip_bytes_in_a_chunk(shard, dataset_name, count=40):
    with h5py.File(shard, "r") as file:
        group = next(iter(file["videos"].values()))
        info = group[dataset_name].id.get_chunk_info(3)  # GOP 0, P-frame slot 3
    with open(shard, "r+b") as raw:
        raw.seek(info.byte_offset + 100)
        data = bytearray(raw.read(count))
        raw.seek(info.byte_offset + 100)
        raw.write(bytes(b ^ 0x5A for b in data))


def test_flipped_bytes_are_found(dataset, tmp_path):
    _, _, extracted = dataset
    damaged = copy(extracted, tmp_path / "damaged")
    assert invoke("verify", damaged).exit_code == 0
    entry = store.load_index(damaged)["videos"][1]
    flip_bytes_in_a_chunk(damaged / entry["shard"], "residuals")
    with pytest.raises(store.StoreError, match=f"{entry['shard']}.*{entry['id']}"):
        store.read_video(damaged, entry["id"])
    result = invoke("verify", damaged)
    assert result.exit_code == 1
    assert entry["shard"] in result.output and entry["id"] in result.output
    assert "residuals" in result.output


@pytest.mark.parametrize("damage", ["header", "truncated"])
def test_a_broken_shard_is_named_and_extracted_again(dataset, tmp_path, damage):
    _, encoded, clean = dataset
    broken = copy(clean, tmp_path / "broken")
    shard = broken / store.load_index(broken)["videos"][2]["shard"]
    if damage == "header":
        with open(shard, "r+b") as file:
            file.write(b"\0" * 512)
    else:
        os.truncate(shard, shard.stat().st_size // 2)
    for args in (["info", broken], ["index", broken], ["verify", broken],
                 ["train", "--data", broken, "--output", tmp_path / "run", *SMALL]):
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert shard.name in result.output and "Traceback" not in result.output, result.output
    result = invoke("extract", encoded, broken, "--shard-size", "1")
    assert result.exit_code == 0, result.output
    assert shard.name in result.output and "extracted again" in result.output
    same_data(clean, broken)


def edited_index(extracted, target, edit):
    folder = copy(extracted, target)
    index = json.loads((folder / "index.json").read_text())
    edit(index)
    (folder / "index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("edit, message", [
    (lambda index: index["videos"][0].update(shard="../../../../etc/passwd"), "plain shard name"),
    (lambda index: index["videos"][0].update(label=17), "label 17"),
    (lambda index: index["videos"][0].update(p_frames=[11]), "p_frames"),
    (lambda index: index["videos"][0].pop("group"), "group"),
])
def test_a_damaged_index_is_named_with_its_entry(dataset, tmp_path, edit, message):
    _, _, extracted = dataset
    folder = edited_index(extracted, tmp_path / "edited", edit)
    for args in (["info", folder], ["train", "--data", folder, "--output", tmp_path / "r", *SMALL]):
        result = invoke(*args)
        assert result.exit_code == 1, result.output
        assert "index.json" in result.output and message in result.output, result.output
        assert store.list_videos(extracted)[0] in result.output  # the entry
    assert not (tmp_path / "r").exists()


def test_an_index_that_disagrees_with_its_shards_is_found_by_verify(dataset, tmp_path):
    _, _, extracted = dataset

    def fewer_p_frames(index):
        index["videos"][0]["p_frames"] = [10, 11, 0]
    folder = edited_index(extracted, tmp_path / "edited", fewer_p_frames)
    result = invoke("verify", folder)
    assert result.exit_code == 1 and "p_frames" in result.output
    assert store.list_videos(extracted)[0] in result.output


def test_invalid_json_is_named(dataset, tmp_path):
    _, _, extracted = dataset
    folder = copy(extracted, tmp_path / "bad")
    (folder / "index.json").write_text('{"format_version": 1, "videos": [')
    result = invoke("info", folder)
    assert result.exit_code == 1 and "index.json" in result.output
    assert "line 1" in result.output and "teamnet index" in result.output


def test_a_checkpoint_that_is_not_one_is_named(dataset, tmp_path):
    _, _, extracted = dataset
    (tmp_path / "random.pt").write_bytes(os.urandom(5000))
    result = invoke("evaluate", "--checkpoint", tmp_path / "random.pt", "--data", extracted)
    assert result.exit_code == 1 and "is not a teamnet checkpoint" in result.output
    assert "weights_only" not in result.output
    result = invoke("train", "--data", extracted, "--output", tmp_path / "run", "--epochs", "1",
                    *SMALL)
    assert result.exit_code == 0, result.output
    result = invoke("train", "--data", extracted, "--output", tmp_path / "run", *SMALL)
    assert result.exit_code == 1 and "already holds a run" in result.output  # not overwritten
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    saved["config"]["model"]["pframe_arch"] = "resnet34"
    torch.save(saved, tmp_path / "other.pt")
    result = invoke("evaluate", "--checkpoint", tmp_path / "other.pt", "--workers", "0")
    assert result.exit_code == 1 and "do not match its config" in result.output


# --- wrong but quiet inputs -----------------------------------------------------------------

def test_encode_rerun_with_other_settings_is_refused(dataset, tmp_path):
    raw, encoded, _ = dataset
    again = copy(encoded, tmp_path / "enc")
    result = invoke("encode", raw, again, "--size", "128x96", "--gop", "6")
    assert result.exit_code == 1
    assert "size" in result.output and "gop" in result.output and "128x96" not in os.listdir(again)
    assert invoke("encode", raw, again, "--size", "96x64").exit_code == 0  # the same: resumes


def test_rotated_video_stays_portrait(tmp_path, ffmpeg_binary):
    make_raw(tmp_path / "flat", names=("x/landscape.mkv",))
    (tmp_path / "raw" / "x").mkdir(parents=True)
    subprocess.run([ffmpeg_binary, "-loglevel", "error", "-display_rotation", "90", "-i",
                    str(tmp_path / "flat" / "x" / "landscape.mkv"), "-c", "copy",
                    str(tmp_path / "raw" / "x" / "phone.mp4")], check=True)
    result = invoke("encode", tmp_path / "raw", tmp_path / "enc", "--short-side", "32")
    assert result.exit_code == 0, result.output
    import av
    with av.open(str(tmp_path / "enc" / "x" / "phone.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (32, 48)


def test_a_target_reached_through_a_link_into_the_source_is_refused(dataset, tmp_path):
    raw, _, _ = dataset
    source = copy(raw, tmp_path / "raw")
    (tmp_path / "link").symlink_to(source / "walk")
    result = invoke("encode", source, tmp_path / "link" / "out")
    assert result.exit_code == 1 and "is inside" in result.output


def test_a_truncated_input_gives_a_warning(tmp_path, ffmpeg_binary):
    make_raw(tmp_path / "lossless", names=("x/long.mkv",), frames=100)
    (tmp_path / "raw" / "x").mkdir(parents=True)
    whole = tmp_path / "whole.mp4"
    subprocess.run([ffmpeg_binary, "-loglevel", "error", "-i",
                    str(tmp_path / "lossless" / "x" / "long.mkv"), "-c:v", "mpeg4", "-q:v", "2",
                    "-movflags", "+faststart", str(whole)], check=True)
    (tmp_path / "raw" / "x" / "cut.mp4").write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    result = invoke("encode", tmp_path / "raw", tmp_path / "enc", "--size", "96x64")
    assert "cut.mp4" in result.output and "truncated" in result.output, result.output
    report = json.loads((tmp_path / "enc" / "encode-report.json").read_text())
    assert report["warnings"] and "cut.mp4" in report["warnings"][0]["path"]


def test_a_label_given_twice_is_refused(dataset, tmp_path):
    _, encoded, _ = dataset
    (tmp_path / "labels.csv").write_text("walk/a,slow\nwalk/b,slow\nrun/c,fast\nrun/d,fast\n"
                                         "walk/a,fast\n")
    result = invoke("extract", encoded, tmp_path / "out", "--labels", tmp_path / "labels.csv")
    assert result.exit_code == 1 and "walk/a" in result.output
    assert "lines 1 and 5" in result.output


def test_lists_with_spaces_and_empty_lists(dataset, tmp_path):
    raw, _, _ = dataset
    spaced = copy(raw, tmp_path / "raw")
    (spaced / "walk" / "a.mkv").rename(spaced / "walk" / "a walk.mkv")
    assert invoke("encode", spaced, tmp_path / "enc", "--size", "96x64").exit_code == 0
    assert invoke("extract", tmp_path / "enc", tmp_path / "ext").exit_code == 0
    (tmp_path / "list.txt").write_text("walk/a walk.mp4 walk\nrun/c.mp4 0\nwalk/b walk\n")
    result = invoke("train", "--data", tmp_path / "ext", "--train-list", tmp_path / "list.txt",
                    "--output", tmp_path / "run", "--epochs", "1", *SMALL)
    assert result.exit_code == 0, result.output
    assert "3 training and 0 validation videos" in result.output
    (tmp_path / "empty.txt").write_text("\n \r\n\n")
    result = invoke("train", "--data", tmp_path / "ext", "--train-list", tmp_path / "empty.txt",
                    "--output", tmp_path / "none", *SMALL)
    assert result.exit_code == 1 and "empty.txt names no videos" in result.output
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("args", [["--short-side", "2"], ["--size", "30x64"]])
def test_sizes_too_small_to_crop_are_refused(dataset, tmp_path, args):
    raw, _, _ = dataset
    result = invoke("encode", raw, tmp_path / "enc", *args)
    assert result.exit_code == 2 and "32" in result.output, result.output


# --- resume ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_run_is_extended_exactly_and_fixed_options_are_refused(dataset, tmp_path):
    _, _, extracted = dataset
    common = ["--data", extracted, *SMALL, "--lr-steps", "2", "--seed", "3"]
    assert invoke("train", *common, "--epochs", "3", "--output", tmp_path / "whole").exit_code == 0
    assert invoke("train", *common, "--epochs", "2", "--output", tmp_path / "grown").exit_code == 0
    result = invoke("train", "--output", tmp_path / "grown", "--resume", "--model", "tsn",
                    "--num-segments", "3")
    assert result.exit_code == 1
    assert "--model" in result.output and "--num-segments" in result.output
    result = invoke("train", "--output", tmp_path / "grown", "--resume", "--lr-steps", "1")
    assert result.exit_code == 1 and "lr-steps" in result.output
    result = invoke("train", "--output", tmp_path / "grown", "--resume", "--epochs", "3")
    assert result.exit_code == 0, result.output
    read = lambda run: [{k: v for k, v in json.loads(line).items()
                         if k in ("epoch", "lr", "train_loss", "steps_per_rank")}
                        for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert read("grown") == read("whole") and len(read("whole")) == 3
    result = invoke("train", "--output", tmp_path / "grown", "--resume")
    assert result.exit_code == 0 and "3 of 3 epochs trained; nothing to do" in result.output
