"""Hostile and damaged inputs: videos that change size mid-stream, shards that decode short,
point into other files, declare what they do not hold, or were replaced under their index."""
import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import zstandard
from click.testing import CliRunner

import synthetic
from cli import main
from preprocess import store
from preprocess.checksum import fletcher32
from preprocess.errors import TeamnetError
from preprocess.motion import GopAccumulator
from preprocess.store.chunks import ChunkError, read_chunk
from teamnet.data import ClipDataset


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """(encoded, extracted) folders of four small videos in two classes, a shard each."""
    root = tmp_path_factory.mktemp("hostile")
    for n, name in enumerate(("walk/a.mkv", "walk/b.mkv", "run/c.mkv", "run/d.mkv")):
        (root / "raw" / name).parent.mkdir(parents=True, exist_ok=True)
        synthetic.write_video(root / "raw" / name, synthetic.pan(25, 64, 96, 1 + n, n % 2, seed=n))
    assert invoke("encode", root / "raw", root / "enc", "--size", "96x64").exit_code == 0
    assert invoke("extract", root / "enc", root / "ext", "--shard-size", "1").exit_code == 0
    return root / "enc", root / "ext"


def first_video(folder):
    """(video id, group name) of the one video of shard-00000.h5."""
    video = next(v for v in store.load_index(folder)["videos"] if v["shard"] == "shard-00000.h5")
    return video["id"], video["group"]


def data_copy(dataset, tmp_path):
    """A copy of the extracted folder, to spoil."""
    return Path(shutil.copytree(dataset[1], tmp_path / "data"))


def walk_folder(tmp_path):
    """SRC/walk, an empty class folder of a source tree SRC = tmp_path/src."""
    source = tmp_path / "src" / "walk"
    source.mkdir(parents=True)
    return source


def hostile(dataset, tmp_path, edit):
    """A copy of the extracted folder whose shard-00000.h5 was edited: edit(shard, group)."""
    folder = data_copy(dataset, tmp_path)
    _, name = first_video(folder)
    with h5py.File(folder / "shard-00000.h5", "r+") as shard:
        edit(shard, shard["videos"][name])
    return folder


# --- 1: videos whose frames change size ---------------------------------------------------

def test_a_stream_that_changes_size_is_named_and_the_rest_extracted(tmp_path):
    small = synthetic.pan(30, 48, 64, 2, 0, seed=1)
    large = synthetic.pan(30, 96, 128, 2, 0, seed=2)
    parts = [synthetic.write_m4v(tmp_path / f"{n}.m4v", frames)
             for n, frames in enumerate((small, large))]
    source = walk_folder(tmp_path)
    # cat a.m4v b.m4v: one stream whose I-frames grow (and the reverse: shrink)
    (source / "grows.m4v").write_bytes(parts[0].read_bytes() + parts[1].read_bytes())
    (source / "shrinks.m4v").write_bytes(parts[1].read_bytes() + parts[0].read_bytes())
    shutil.copy(parts[0], source / "fine.m4v")
    result = invoke("extract", tmp_path / "src", tmp_path / "out", "--workers", "2")
    assert result.exit_code == 1, result.output
    assert "grows.m4v: the frame size changes at frame 30, from 64x48 to 128x96" in result.output
    assert "shrinks.m4v: the frame size changes at frame 30, from 128x96 to 64x48" in result.output
    assert store.list_videos(tmp_path / "out") == ["walk/fine"]
    assert invoke("verify", tmp_path / "out").exit_code == 0
    video = store.read_video(tmp_path / "out", "walk/fine")
    assert video["iframes"].shape[1:3] == (48, 64) and video["num_p"].tolist() == [11, 11, 5]


def test_the_kernels_refuse_arrays_of_another_size():
    accumulator = GopAccumulator(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="for a GOP of 16x16"):
        accumulator.outputs(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="for a GOP of 16x16"):
        accumulator.outputs(np.zeros((16, 16, 3), np.uint8), np.empty((8, 8, 2), np.int16),
                            np.empty((16, 16, 3), np.int16))


def test_the_writer_refuses_frames_of_another_size(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as file:
        writer = store.VideoWriter(file.create_group("v"), 16, 16, 2, np.int8, "zstd")
        with pytest.raises(ValueError, match="iframes: 1 frames of shapes"):
            writer.add_gop(np.zeros((32, 32, 3), np.uint8), np.zeros((2, 16, 16, 2), np.int8),
                           np.zeros((2, 16, 16, 3), np.int8))
        with pytest.raises(ValueError, match="mvs: 3 frames"):  # more P-frames than slots
            writer.add_gop(np.zeros((16, 16, 3), np.uint8), np.zeros((3, 16, 16, 2), np.int8),
                           np.zeros((3, 16, 16, 3), np.int8))


# --- 2: chunks that decode short ----------------------------------------------------------

@pytest.mark.parametrize("compression", ["zstd", "gzip", "lzf", "none"])
def test_a_chunk_that_decodes_short_is_refused(tmp_path, compression):
    # HDF5 would return the missing bytes as whatever was in its buffer, checksum passed
    filters = {"zstd": store.writer.FILTERS["zstd"]["mvs"], "gzip": {"compression": "gzip"},
               "lzf": {"compression": "lzf"}, "none": {}}[compression]
    with h5py.File(tmp_path / "f.h5", "w") as file:
        whole = file.create_dataset("whole", (2, 10, 100), np.uint8, chunks=(1, 10, 100),
                                    maxshape=(None, 10, 100), fletcher32=True, **filters)
        half = file.create_dataset("half", (1, 5, 100), np.uint8, chunks=(1, 5, 100),
                                   fletcher32=True, **filters)
        whole[0], half[0] = 3, 7
        whole.id.write_direct_chunk((1, 0, 0), half.id.read_direct_chunk((0, 0, 0))[1])
        assert (read_chunk(whole, (0, 0, 0)) == 3).all()
        with pytest.raises(ChunkError, match="decodes to 500 bytes, not its 1000"):
            read_chunk(whole, (1, 0, 0))
        whole.resize(3, axis=0)
        with pytest.raises(ChunkError, match="never written"):  # never HDF5's zero fill
            read_chunk(whole, (2, 0, 0))


def short_residual(shard, group):
    """Residual chunk (0, 0) replaced by a valid Zstd frame of half its size, checksummed."""
    dataset = group["residuals"]
    half = np.zeros(dataset.chunks, dataset.dtype).reshape(-1)[:dataset.chunks[-1] * 32]
    data = zstandard.ZstdCompressor().compress(half.tobytes())
    dataset.id.write_direct_chunk((0, 0, 0, 0, 0), data + fletcher32(data))


def test_a_short_zstd_chunk_is_named_by_readers_and_verify(dataset, tmp_path):
    folder = hostile(dataset, tmp_path, short_residual)
    video_id, _ = first_video(folder)
    with pytest.raises(store.StoreError, match=r"shard-00000.h5, video .*decodes to 96 bytes"):
        store.read_video(folder, video_id)
    reader = store.ClipReader(folder)
    with pytest.raises(store.StoreError, match="decodes to 96 bytes"):
        reader.read(video_id, [0], [0], ("residual",))
    assert reader.read(video_id, [0], [1], ("residual",))["residual"].shape == (1, 64, 96, 3)
    result = invoke("verify", folder)
    assert result.exit_code == 1
    assert f"shard-00000.h5, video {video_id!r}: residuals, GOP 0: damaged (chunk (0, 0, 0, 0, " \
           "0) decodes to 96 bytes, not its 18432)" in result.output


# --- 3: shards that lead to other files ---------------------------------------------------

def external_link(shard, group):
    del group["iframes"]
    group["iframes"] = h5py.ExternalLink("shard-00001.h5", "/videos/00000/iframes")


def external_storage(shard, group):
    secret = shard.filename.replace("shard-00000.h5", "secret.bin")
    with open(secret, "wb") as file:
        file.write(b"root:x:0:0:root:/root:/bin/bash\n" * 2000)
    shape = group["iframes"].shape
    del group["iframes"]
    group.create_dataset("iframes", shape, np.uint8,
                         external=[(secret, 0, int(np.prod(shape)))])


def virtual_dataset(shard, group):
    shape = group["iframes"].shape
    del group["iframes"]
    layout = h5py.VirtualLayout(shape, np.uint8)
    layout[:] = h5py.VirtualSource("shard-00001.h5", "/videos/00000/iframes", shape)
    group.create_virtual_dataset("iframes", layout)


def soft_link(shard, group):
    del group["residuals"]
    group["residuals"] = h5py.SoftLink(group.name + "/mvs")


@pytest.mark.parametrize("edit, problem", [
    (external_link, "/iframes is a ExternalLink, not an object of the shard's own"),
    (external_storage, "/iframes keeps its data in external files"),
    (virtual_dataset, "/iframes is a virtual dataset"),
    (soft_link, "/residuals is a SoftLink"),
])
def test_a_shard_may_hold_only_its_own_datasets(dataset, tmp_path, edit, problem):
    folder = hostile(dataset, tmp_path, edit)
    video_id, _ = first_video(folder)
    with pytest.raises(store.StoreError, match=problem):
        store.read_shard(folder / "shard-00000.h5")
    with pytest.raises(store.StoreError, match=problem):
        store.read_video(folder, video_id)
    result = invoke("show", folder, video_id, "--out", tmp_path / "x.png")
    assert result.exit_code == 1 and problem in result.output
    assert not (tmp_path / "x.png").exists()
    result = invoke("verify", folder)
    assert result.exit_code == 1 and "shard-00000.h5: unreadable shard" in result.output
    result = invoke("index", folder)
    assert result.exit_code == 1 and problem in result.output
    # extract into the folder sets the shard aside and extracts its video again
    result = invoke("extract", dataset[0], folder, "--shard-size", "1")
    assert result.exit_code == 0, result.output
    assert (folder / "shard-00000.h5.broken").exists()
    assert invoke("verify", folder).exit_code == 0
    assert video_id in store.list_videos(folder)


# --- 4: what a shard declares, checked against what it holds ------------------------------

def huge_frames(shard, group):
    # 4096x4096 frames declared, one I-frame chunk written: the rest would read as zeros
    for name, channels in (("iframes", 3), ("mvs", 2), ("residuals", 3)):
        shape = (*group[name].shape[:-3], 4096, 4096, channels)
        dtype = group[name].dtype
        del group[name]
        group.create_dataset(name, shape, dtype, chunks=(1,) * (len(shape) - 3) + shape[-3:],
                             fletcher32=True, **store.writer.FILTERS["zstd"]["iframes"])
    group["iframes"][0, :8] = 1
    group.attrs.update(width=4096, height=4096)


def endless_num_p(shard, group):
    del group["num_p"]
    group.create_dataset("num_p", (2 ** 36,), np.int16, chunks=(2 ** 16,), fletcher32=True)
    group.attrs["gops"] = 2 ** 36


def wrong_attribute(shard, group):
    group.attrs["width"] = "wide"


def zero_stride(shard, group):
    settings = json.loads(shard.attrs["settings"])
    shard.attrs["settings"] = json.dumps({**settings, "p_stride": 0})


def huge_encode_size(shard, group):
    settings = json.loads(shard.attrs["settings"])
    shard.attrs["settings"] = json.dumps({**settings, "encode": {
        **(settings["encode"] or {}), "size": [10 ** 12, 64]}})


def no_frames(shard, group):
    group.attrs["frames"] = 0


@pytest.mark.parametrize("edit, problem", [
    (huge_frames, "1 I-frames stored, 3 declared"),
    (endless_num_p, "num_p is (68719476736,) int16, expected (3,) integers"),
    (wrong_attribute, "attribute(s) ['width'] missing or not of type ['int']"),
    (zero_stride, "'p_stride': 0"),
    (huge_encode_size, "are not ones `teamnet encode` records"),
    (no_frames, "disagree with its datasets"),
])
def test_declared_shapes_and_attributes_are_checked(dataset, tmp_path, edit, problem):
    folder = hostile(dataset, tmp_path, edit)
    index = (folder / "index.json").read_bytes()
    with pytest.raises(store.StoreError, match=problem.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        store.read_shard(folder / "shard-00000.h5")
    result = invoke("index", folder)  # refused, naming the shard; the old index stays
    assert result.exit_code == 1 and "shard-00000.h5: unreadable shard" in result.output
    assert problem in result.output and (folder / "index.json").read_bytes() == index
    result = invoke("verify", folder)
    assert result.exit_code == 1 and problem in result.output
    result = invoke("extract", dataset[0], folder, "--shard-size", "1")
    assert result.exit_code == 0, result.output
    assert (folder / "shard-00000.h5.broken").exists() and len(store.list_videos(folder)) == 4


def test_an_index_with_impossible_settings_is_refused(dataset, tmp_path):
    folder = data_copy(dataset, tmp_path)
    index = json.loads((folder / "index.json").read_text())
    for settings in ({**index["settings"], "p_stride": 0}, {**index["settings"], "p_stride": [4]}):
        (folder / "index.json").write_text(json.dumps({**index, "settings": settings}))
        with pytest.raises(store.StoreError, match="are not ones `teamnet extract` records"):
            store.load_index(folder)


# --- 5: a shard replaced under its index --------------------------------------------------

def test_a_replaced_shard_is_not_read_as_the_index_s_videos(dataset, tmp_path):
    folder = data_copy(dataset, tmp_path)
    video_id, _ = first_video(folder)
    shutil.copy(folder / "shard-00001.h5", folder / "shard-00000.h5")  # same name, other video
    message = "does not hold the video index.json names"
    with pytest.raises(store.StoreError, match=message):
        store.read_video(folder, video_id)
    clips = ClipDataset(folder, [(video_id, 0)], ("iframe", "mv"), 2, 32, train=False)
    with pytest.raises(store.StoreError, match=message):
        clips[(0, 0)]
    result = invoke("verify", folder)
    assert result.exit_code == 1 and "index.json names it; the shard does not hold it" in \
        result.output


# --- 16: long names -----------------------------------------------------------------------

def test_outputs_with_the_longest_legal_names_are_written(tmp_path):
    from preprocess.atomic import atomic_output
    for name in ("é" * 122 + ".png", "x" * 255, "x" * 254):  # 248, 255 and 254 bytes
        with atomic_output(tmp_path / name) as temporary:
            temporary.write_text(name)
        assert (tmp_path / name).read_text() == name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ("é" * 122 + ".png", "x" * 255, "x" * 254))  # no temporary name left


# --- 20: a raw stream declares no length ------------------------------------------------

def test_a_raw_stream_onto_a_full_disk_is_refused_before_hdf5_meets_it(tmp_path):
    from disks import grow, small_disk
    source = walk_folder(tmp_path)
    # 360 frames of 320x240 in a raw .m4v (no frame count anywhere): some 45 MB of shards
    synthetic.write_m4v(source / "long.m4v", synthetic.pan(360, 240, 320, 3, 1))
    with small_disk(tmp_path / "disk", "18m") as disk:
        result = invoke("extract", tmp_path / "src", disk / "out")
        assert result.exit_code == 1
        assert "long.m4v: no space left on device (GOP 0 needs up to" in result.output
        assert not list((disk / "out").glob("*.h5")) and not list((disk / "out").glob(".*partial"))
        grow(disk, "160m")
        result = invoke("extract", tmp_path / "src", disk / "out")
        assert result.exit_code == 0, result.output
        assert store.read_video(disk / "out", "walk/long")["num_p"].sum() == 360 - 30


def test_names_that_are_not_utf8_or_too_long_are_named_and_the_rest_done(tmp_path):
    source = walk_folder(tmp_path)
    synthetic.write_video(source / "fine.mkv", synthetic.pan(13, 64, 96, 1, 0))
    odd = source / os.fsdecode(b"caf\xe9 \x1b[31mred.mkv")  # Latin-1, and a terminal escape
    shutil.copy(source / "fine.mkv", odd)
    folder = os.open(source, os.O_RDONLY)  # folders below a path longer than PATH_MAX (4096)
    for _ in range(17):  # made one level at a time, relative to the last
        os.mkdir("d" * 250, dir_fd=folder)
        folder, parent = os.open("d" * 250, os.O_RDONLY, dir_fd=folder), folder
        os.close(parent)
    os.close(folder)
    result = invoke("encode", tmp_path / "src", tmp_path / "enc", "--size", "96x64")
    assert result.exit_code == 1
    assert "encoded 2, already done 0, failed 1" in result.output
    report = json.loads((tmp_path / "enc" / "encode-report.json").read_text())  # valid JSON
    (failure,) = report["failures"]
    assert failure["path"].startswith(f"{source}/{'d' * 250}/") and len(failure["path"]) > 4096
    assert failure["reason"] == "cannot be written: File name too long"
    assert "\x1b" not in result.output and r"caf\udce9 \x1b[31mred" not in result.output
    result = invoke("extract", tmp_path / "enc", tmp_path / "ext")
    assert result.exit_code == 1
    assert r"caf\udce9 \x1b[31mred.mp4: its path is not valid UTF-8" in result.output
    assert store.list_videos(tmp_path / "ext") == ["walk/fine"]


# --- 15: locks that cannot be taken -------------------------------------------------------

def test_a_lock_that_cannot_be_taken_is_explained(dataset, tmp_path, monkeypatch):
    from disks import small_disk
    from preprocess.lock import folder_lock
    with small_disk(tmp_path / "disk", "1m") as disk:
        (disk / "out").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = invoke("extract", dataset[0], disk / "out")
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert (f"{disk / 'out'}: cannot create its lock file .teamnet.lock (Read-only file "
                "system); the folder must be writable") in result.output
    # without a lock (TEAMNET_NO_LOCK=1, for file systems that lock nothing): no refusal
    monkeypatch.setenv("TEAMNET_NO_LOCK", "1")
    with folder_lock(tmp_path / "free"), folder_lock(tmp_path / "free"):
        assert not (tmp_path / "free" / ".teamnet.lock").exists()


# --- 13: what killed runs leave -----------------------------------------------------------

def dead_tag():
    """HOST-PID of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}-{process.pid}"


def test_a_rerun_removes_what_killed_runs_left(dataset, tmp_path):
    folder = data_copy(dataset, tmp_path)
    left = [folder / f".{name}.{dead_tag()}.partial" for name in (
        "index.json", "extract-report.json", "shard-00009.h5")]
    for path in left:
        path.write_text("half")
    assert invoke("extract", dataset[0], folder, "--shard-size", "1").exit_code == 0
    assert not any(path.exists() for path in left)
    (folder / f".index.json.{dead_tag()}.partial").write_text("half")
    assert invoke("index", folder).exit_code == 0
    assert not list(folder.glob(".*.partial"))


# --- 9: classes that came from a labels file ----------------------------------------------

def test_a_rerun_without_labels_keeps_the_classes_it_was_given(dataset, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("video,class\n" + "".join(
        f"{video},{'fast' if video.endswith(('c', 'd')) else 'slow'}\n"
        for video in store.list_videos(dataset[1])))
    folder = tmp_path / "data"
    assert invoke("extract", dataset[0], folder, "--labels", labels).exit_code == 0
    assert store.load_index(folder)["classes"] == ["fast", "slow"]
    for args in (("extract", dataset[0], folder), ("index", folder)):
        result = invoke(*args)
        assert result.exit_code == 1
        assert f"took its classes from {labels}: give --labels {labels} again" in result.output
        assert store.load_index(folder)["classes"] == ["fast", "slow"]
    assert invoke("index", folder, "--labels", labels).exit_code == 0


# --- 12: files of several video streams -------------------------------------------------

def test_the_default_video_stream_is_encoded_not_the_first(tmp_path, ffmpeg_binary):
    still = synthetic.write_video(tmp_path / "still.mkv", synthetic.pan(1, 64, 96, 0, 0, seed=5))
    video = synthetic.write_video(tmp_path / "video.mkv", synthetic.pan(25, 64, 96, 2, 0))
    source = walk_folder(tmp_path)
    # a still, then the video, marked default (cover-art-like first streams are common)
    subprocess.run([ffmpeg_binary, "-loglevel", "error", "-i", str(still), "-i", str(video),
                    "-map", "0:v", "-map", "1:v", "-c", "copy", "-disposition:v:0", "0",
                    "-disposition:v:1", "default", str(source / "two.mkv")], check=True)
    shutil.copy(video, source / "one.mkv")
    result = invoke("encode", tmp_path / "src", tmp_path / "enc", "--size", "96x64")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "enc" / "encode-report.json").read_text())
    assert report["warnings"] == []  # not "truncated": the still's one frame is not the count
    assert invoke("extract", tmp_path / "enc", tmp_path / "ext").exit_code == 0
    two, one = (store.read_video(tmp_path / "ext", f"walk/{n}") for n in ("two", "one"))
    for key in ("iframes", "mvs", "residuals", "num_p"):
        np.testing.assert_array_equal(two[key], one[key])


# --- 11: sources replaced or deleted since ------------------------------------------------

def test_replaced_sources_are_done_again_and_deleted_ones_named(dataset, tmp_path):
    raw = dataset[0].parent / "raw"
    shutil.copytree(raw, tmp_path / "raw")
    shutil.copytree(dataset[0], tmp_path / "enc")
    shutil.copytree(dataset[1], tmp_path / "ext")
    encoded = tmp_path / "enc" / "walk" / "a.mp4"
    # an older copy made before stamps were recorded would be skipped; this one records it
    result = invoke("encode", tmp_path / "raw", tmp_path / "enc", "--size", "96x64")
    assert "encoded 0, already done 4" in result.output, result.output
    synthetic.write_video(tmp_path / "raw" / "walk" / "a.mkv",
                          synthetic.pan(25, 64, 96, 0, 3, seed=9))  # another video, same name
    result = invoke("encode", tmp_path / "raw", tmp_path / "enc", "--size", "96x64")
    assert result.exit_code == 0 and "encoded 1, already done 3" in result.output, result.output
    result = invoke("extract", tmp_path / "enc", tmp_path / "ext", "--shard-size", "1")
    assert result.exit_code == 0, result.output
    assert "'walk/a' was replaced since it was extracted: set aside as" in result.output
    fresh = tmp_path / "fresh"
    assert invoke("extract", tmp_path / "enc", fresh, "--shard-size", "1").exit_code == 0
    for video_id in store.list_videos(fresh):
        a, b = store.read_video(fresh, video_id), store.read_video(tmp_path / "ext", video_id)
        np.testing.assert_array_equal(a["mvs"], b["mvs"])
    assert store.read_video(fresh, "walk/a")["mvs"][..., 1].max() > 0  # the new, vertical pan
    for seed in (11, 12):  # replaced twice more: its new shard, the last, takes the name
        earlier = {path: path.read_bytes() for path in (tmp_path / "ext").glob("*.replaced*")}
        synthetic.write_video(tmp_path / "raw" / "walk" / "a.mkv",  # of the one set aside
                              synthetic.pan(25, 64, 96, 3, 0, seed=seed))
        assert invoke("encode", tmp_path / "raw", tmp_path / "enc", "--size",
                      "96x64").exit_code == 0
        result = invoke("extract", tmp_path / "enc", tmp_path / "ext", "--shard-size", "1")
        assert result.exit_code == 0, result.output
        aside = sorted((tmp_path / "ext").glob("*.replaced*"))
        assert len(aside) == len(earlier) + 1  # each kept, as it was
        assert all(path.read_bytes() == data for path, data in earlier.items())
    encoded.with_name("b.mp4").unlink()
    result = invoke("extract", tmp_path / "enc", tmp_path / "ext", "--shard-size", "1")
    assert result.exit_code == 0
    assert "1 stored video(s) are no longer in the source folder, such as 'walk/b'" in \
        result.output


# --- round 4: labels files ------------------------------------------------------------------

@pytest.mark.parametrize("name, text, problem", [
    ("something-something-v2-train.json",
     '[{"id": "7", "template": "Pushing [something]"}, {"id": "8", "template": "Lifting '
     '[something]"}, {"id": "7", "template": "Lifting [something]"}]',
     "'7' has two classes, 'Pushing something' and 'Lifting something' (lines 1 and 3)"),
    ("train.csv", "label,youtube_id,time_start,time_end,split\nabseiling,abc,0,10,train\n"
     "archery,abc,0,10,train\n",
     "'abc_000000_000010' has two classes, 'abseiling' and 'archery' (lines 2 and 3)"),
    ("labels.csv", "video,class\nwalk/a,walk\nwalk/a.mkv,run\n",
     "'walk/a' has two classes, 'walk' and 'run' (lines 2 and 3)"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
    ("wide.csv", "video,class\n" + "a" * 200_000 + ",walk\n", "wide.csv:2: not CSV this reads"),
])
def test_a_labels_file_that_names_a_video_twice_or_cannot_be_one_is_refused(
        tmp_path, name, text, problem):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TeamnetError, match=re.escape(problem)):
        store.index.read_labels(path)


# --- round 4: what a checkpoint records ------------------------------------------------------

GOOD_SETTINGS = {"format_version": 1, "storage": "int8", "compression": "zstd", "p_stride": 1,
                 "encode": {"size": [340, 256], "gop": 12, "qscale": 1, "short_side": None}}


@pytest.mark.parametrize("edit, problem", [
    ({"data_settings": {**GOOD_SETTINGS, "p_stride": 0}}, "its data_settings cannot be used"),
    ({"data_settings": {**GOOD_SETTINGS, "p_stride": -3}}, "its data_settings cannot be used"),
    ({"data_settings": [GOOD_SETTINGS]}, "its data_settings cannot be used"),
    ({"data_settings": {**GOOD_SETTINGS, "encode": {**GOOD_SETTINGS["encode"], "gop": 0}}},
     "its data_settings cannot be used"),
    ({"classes": [1, 2, 3]}, "are not a list of distinct names"),
    ({"classes": ["walk", "walk"]}, "are not a list of distinct names"),
])
def test_a_checkpoint_s_recorded_data_are_checked_by_every_reader(tmp_path, edit, problem):
    import torch
    path = tmp_path / "edited.pt"
    torch.save({"model": {}, "config": {}, "classes": ["walk", "run"],
                "data_settings": GOOD_SETTINGS, **edit}, path)
    video = synthetic.write_video(tmp_path / "a.mkv", synthetic.pan(13, 64, 96, 1, 0))
    for args in (["predict", "--checkpoint", path, video],
                 ["evaluate", "--checkpoint", path, "--data", tmp_path],
                 ["export", "--checkpoint", path, "--out", tmp_path / "small.pt"]):
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert problem in result.output and "Traceback" not in result.output


def test_an_unwritable_target_is_named_with_what_to_do(tmp_path):
    from disks import small_disk
    raw, target = tmp_path / "raw", tmp_path / "enc"
    (raw / "walk").mkdir(parents=True)
    synthetic.write_video(raw / "walk" / "a.mkv", synthetic.pan(13, 64, 96, 1, 0))
    target.mkdir()
    with small_disk(target / "walk", "1m") as disk:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = invoke("encode", raw, target)
    assert result.exit_code == 1
    assert (f"cannot write {target / 'walk' / 'a.mp4'}: Read-only file system; make its "
            "folder writable") in result.output
    assert "internal error" not in result.output
