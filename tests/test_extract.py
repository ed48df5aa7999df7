"""`teamnet extract` and the store: exactness of storage, refusals, short GOPs, kill + resume."""
import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import h5py
import numpy as np
import pytest

import reference
import synthetic
from preprocess import store
from preprocess import decode
from preprocess.decode import RGBConverter
from preprocess.discover import find_videos
from preprocess.extract import REPORT_NAME, extract_dataset
from preprocess.parallel import run_parallel
from preprocess.settings import ExtractSettings, ParallelSettings
from preprocess.checksum import fletcher32
from preprocess.store.writer import FILTERS, compressor

SMALL = (96, 64)


def make_folder(root, videos):
    """videos: {relative path: frames}; returns root."""
    for relative, frames in videos.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        synthetic.write_video(root / relative, frames)
    return root


def test_int8_is_int16_saturated_and_iframes_are_decoded(tmp_path, clips, pipeline):
    (tmp_path / "raw" / "phone").mkdir(parents=True)
    (tmp_path / "raw" / "phone" / "c.mp4").write_bytes((clips / "carphone_pristine.mp4").read_bytes())
    encoded, exact, _ = pipeline(tmp_path / "raw", tmp_path / "a", size=(176, 144), storage="int16")
    _, small, _ = pipeline(tmp_path / "raw", tmp_path / "b", size=(176, 144), storage="int8")
    v16, v8 = store.read_video(exact, "phone/c"), store.read_video(small, "phone/c")
    decoded_iframes = [rgb for kind, rgb, _ in reference.decode_all(encoded / "phone" / "c.mp4")
                       if kind == "I"]
    np.testing.assert_array_equal(v8["iframes"], np.stack(decoded_iframes))
    np.testing.assert_array_equal(v8["mvs"], v16["mvs"].clip(-128, 127))
    np.testing.assert_array_equal(v8["residuals"], v16["residuals"].clip(-128, 127))
    assert np.abs(v16["residuals"]).max() > 128  # so that saturation was exercised
    assert v8["mvs"].dtype == v8["residuals"].dtype == np.int16  # the reader's contract


def test_one_converter_per_video_gives_the_pixels_of_to_ndarray(clips):
    # extraction converts with one swscale context per video; PyAV's to_ndarray makes one a frame
    converter = RGBConverter()
    with av.open(str(clips / "bikes.mp4")) as container:  # H.264, 640x272, scene cuts
        for frame in container.decode(video=0):
            np.testing.assert_array_equal(converter(frame), frame.to_ndarray(format="rgb24"))


def irregular_encodes(ffmpeg_binary, source, target):
    """MPEG-4 files that `teamnet encode` would never make."""
    common = [ffmpeg_binary, "-loglevel", "error", "-y", "-i", str(source), "-an", "-c:v", "mpeg4"]
    subprocess.run(common + ["-g", "12", "-bf", "2", str(target / "bframes.mp4")], check=True)
    subprocess.run(common + ["-g", "12", "-bf", "0", "-force_key_frames", "expr:eq(n,5)",
                             str(target / "scenecut.mp4")], check=True)


def test_inputs_not_made_by_encode_are_refused(tmp_path, clips, ffmpeg_binary, pipeline):
    raw = make_folder(tmp_path / "raw", {"x/good.mkv": synthetic.pan(30, 64, 96, 1, 1)})
    encoded, _, _ = pipeline(raw, tmp_path, size=SMALL)
    irregular_encodes(ffmpeg_binary, raw / "x" / "good.mkv", encoded / "x")
    (encoded / "x" / "h264.mp4").write_bytes((clips / "carphone_distorted.mp4").read_bytes())
    index, failures, _ = extract_dataset(encoded, tmp_path / "again")
    reasons = {Path(path).name: reason for path, reason in failures}
    assert set(reasons) == {"bframes.mp4", "scenecut.mp4", "h264.mp4"}
    assert "B-frame" in reasons["bframes.mp4"]
    assert "irregular GOPs" in reasons["scenecut.mp4"]
    assert "codec is h264" in reasons["h264.mp4"]
    assert all("teamnet encode" in reason for reason in reasons.values())
    assert [video["id"] for video in index["videos"]] == ["x/good"]
    report = json.loads((tmp_path / "again" / REPORT_NAME).read_text())
    assert report["failed"] == 3 and report["extracted"] == 1


@pytest.mark.parametrize("frames, num_p", [(1, [0]), (5, [4]), (13, [11, 0]), (24, [11, 11])])
def test_short_gops_keep_their_true_count(tmp_path, pipeline, frames, num_p):
    raw = make_folder(tmp_path / "raw", {"c/v.mkv": synthetic.pan(frames, 64, 96, 2, 1)})
    _, extracted, _ = pipeline(raw, tmp_path, size=SMALL)
    video = store.read_video(extracted, "c/v")
    assert video["num_p"].tolist() == num_p
    assert video["mvs"].shape == (len(num_p), max(num_p), 64, 96, 2)
    assert video["residuals"].shape == (len(num_p), max(num_p), 64, 96, 3)
    for g, count in enumerate(num_p):  # used slots hold motion, unused ones are zero
        assert all(np.abs(video["mvs"][g, k]).max() > 0 for k in range(count))
        assert not video["mvs"][g, count:].any() and not video["residuals"][g, count:].any()
    (entry,) = store.load_index(extracted)["videos"]
    assert (entry["frames"], entry["gops"], entry["p_frames"]) == (frames, len(num_p), num_p)


@pytest.fixture(scope="module")
def encoded_dataset(tmp_path_factory, pipeline):
    """10 synthetic videos, 3 classes, 60 frames at 160x128; encoded and extracted once."""
    root = tmp_path_factory.mktemp("dataset")
    videos = {f"class{i % 3}/video{i}.mkv": synthetic.pan(60, 128, 160, 1 + i % 3, i % 2, seed=i)
              for i in range(10)}
    encoded, extracted, failures = pipeline(make_folder(root / "raw", videos), root,
                                            size=(160, 128), shard_size=3)
    assert failures == []
    return encoded, extracted


def run_cli(*args):
    return subprocess.Popen([sys.executable, "-c", "import cli; cli.main()", *map(str, args)],
                            cwd=Path(__file__).parent.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def test_decoding_leaves_no_frame_to_the_garbage_collector(encoded_dataset):
    # Frames whose motion vectors were read through frame.side_data became cyclic garbage
    # (frame <-> side-data container), holding their picture buffers until a collection
    # that, for some, never came: a worker grew 5 MB a video. They must be freed at once.
    encoded, _ = encoded_dataset
    paths = [video.path for video in find_videos(encoded)]  # 10 videos, 550 P-frames
    gc.collect()
    gc.disable()  # what decoding leaves behind stays visible
    try:
        for path in paths:
            for _, _, records in decode.decode_with_motion(path):
                pass
        frames = sum(type(o).__name__ == "VideoFrame" for o in gc.get_objects())
    finally:
        gc.enable()
    assert records is not None and len(records) > 0  # motion vectors were read
    assert frames <= 2  # the decoder's next frame, at most; with frame.side_data: 550


def test_work_is_handed_out_largest_first():
    # so that a run does not end with one worker on a large item while the others idle
    done = run_parallel(lambda item: item, [3, 9, 1, 5], ParallelSettings(workers=1), "test",
                        size=lambda item: item)
    assert list(done) == [9, 5, 3, 1]  # one worker: in the order they are handed out


def test_killed_extraction_resumes_to_the_same_result(tmp_path, encoded_dataset):
    encoded, complete = encoded_dataset
    target = tmp_path / "killed"
    # one worker: shards appear in order, so the kill lands after the second one
    process = run_cli("extract", encoded, target, "--shard-size", "1", "--workers", "1")
    deadline = time.monotonic() + 120
    while not (target / store.shard_name(1)).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    shards = sorted(target.glob(store.SHARD_GLOB))
    assert 2 <= len(shards) < 10, "the kill should land mid-run"
    for shard in shards:  # what is visible is complete
        assert len(store.read_shard(shard)[1]) == 1
    assert not (target / store.INDEX_NAME).exists()
    process = run_cli("extract", encoded, target, "--shard-size", "1")
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err.decode()
    assert not list(target.glob(".*partial"))  # no temporary file left
    assert len(list(target.glob(store.SHARD_GLOB))) == 10
    assert store.list_videos(target) == store.list_videos(complete)
    for video_id in store.list_videos(complete):
        resumed, clean = store.read_video(target, video_id), store.read_video(complete, video_id)
        for key in ("iframes", "mvs", "residuals", "num_p"):
            np.testing.assert_array_equal(resumed[key], clean[key])
        assert resumed["label"] == clean["label"]


def test_p_stride_keeps_every_sth_p_frame(tmp_path, encoded_dataset):
    encoded, _ = encoded_dataset
    full = extract_dataset(encoded, tmp_path / "full", ExtractSettings(storage="int16"))[0]
    extract_dataset(encoded, tmp_path / "strided", ExtractSettings(storage="int16", p_stride=4))
    video_id = full["videos"][4]["id"]
    every, some = (store.read_video(tmp_path / name, video_id) for name in ("full", "strided"))
    assert some["num_p"].tolist() == [3] * 5 and some["p_stride"] == 4  # P-frames 1, 5, 9
    for key in ("mvs", "residuals"):
        np.testing.assert_array_equal(some[key], every[key][:, [0, 4, 8]])
    np.testing.assert_array_equal(some["iframes"], every["iframes"])
    small, large = store.summary(tmp_path / "strided"), store.summary(tmp_path / "full")
    assert small["bytes"] < 0.45 * large["bytes"]


def test_rerun_with_other_settings_is_refused(encoded_dataset):
    encoded, extracted = encoded_dataset
    with pytest.raises(store.StoreError, match="extracted with settings"):
        extract_dataset(encoded, extracted, ExtractSettings(storage="int16"))
    index, failures, _ = extract_dataset(encoded, extracted)  # same settings: nothing to do
    assert failures == [] and len(index["videos"]) == 10


def test_index_and_reader(encoded_dataset):
    _, extracted = encoded_dataset
    ids = store.list_videos(extracted)
    assert ids == sorted(ids) and len(ids) == 10
    index = store.load_index(extracted)
    assert index["classes"] == ["class0", "class1", "class2"]
    video = store.read_video(extracted, "class2/video5")
    assert (video["label"], video["class_name"], video["fps"]) == (2, "class2", 25.0)
    assert video["iframes"].dtype == np.uint8 and video["iframes"].shape == (5, 128, 160, 3)
    assert video["num_p"].tolist() == [11] * 5
    # pan of (1 + 5 % 3, 5 % 2) = (3, 1) px per frame
    assert np.median(video["mvs"][2, 10, 40:-40, 50:-50], axis=(0, 1)).tolist() == [33, 11]
    entry = index["by_id"]["class2/video5"]
    assert (entry["width"], entry["height"], entry["frames"], entry["gops"]) == (160, 128, 60, 5)
    assert sum(1 for v in index["videos"] if v["shard"] == entry["shard"]) <= 3  # --shard-size
    with pytest.raises(store.StoreError, match="no video 'nope'"):
        store.read_video(extracted, "nope")
    with pytest.raises(store.StoreError, match="no index"):
        store.list_videos(extracted.parent)


def test_shards_are_readable_with_h5py_alone(encoded_dataset):
    # docs/FORMAT.md: /videos/<n> groups with attributes and four datasets
    _, extracted = encoded_dataset
    index = json.loads((extracted / "index.json").read_text())
    entry = index["videos"][0]
    with h5py.File(extracted / entry["shard"], "r") as shard:
        assert json.loads(shard.attrs["settings"])["storage"] == "int8"
        group = shard["videos"][entry["group"]]
        assert group.attrs["video_id"] == entry["id"]
        assert group["mvs"].dtype == np.int8 and group["mvs"].chunks == (1, 1, 128, 160, 2)
        assert group["num_p"][()].tolist() == entry["p_frames"]
        for name in ("iframes", "mvs", "residuals"):  # the default: Zstd (32015), checksums
            assert list(group[name].filter_ids) == [32015, h5py.h5z.FILTER_FLETCHER32], name


def test_labels_from_an_annotation_file(tmp_path, encoded_dataset):
    encoded, _ = encoded_dataset
    labels = tmp_path / "labels.csv"
    rows = [f"class{i % 3}/video{i}{'.mp4' if i % 2 else ''},{'odd' if i % 2 else 'even'}"
            for i in range(10)]
    labels.write_text("video,class\n" + "\n".join(rows) + "\n")
    index, _, _ = extract_dataset(encoded, tmp_path / "out", ExtractSettings(shard_size=5),
                               labels_file=labels)
    assert index["classes"] == ["even", "odd"]
    assert index["by_id"]["class1/video1"]["label"] == 1
    labels.write_text("\n".join(rows[:-1]) + "\n")  # an unlabelled video is left out, named
    index, _, notes = extract_dataset(encoded, tmp_path / "other", labels_file=labels)
    assert "class0/video9" not in index["by_id"] and len(index["videos"]) == 9
    assert notes[0][1] == ("1 video(s) that no labels file names were left out, such as "
                           "'class0/video9'")


def test_packages_stay_light():
    # extraction workers never load torch; the reader never needs the decoder
    code = ("import sys; sys.modules['torch'] = None; import cli, preprocess.extract, "
            "preprocess.encode; sys.modules['av'] = sys.modules['numba'] = None; "
            "[sys.modules.pop(m) for m in list(sys.modules) if m.startswith('preprocess')]; "
            "import preprocess.store")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_direct_zstd_chunks_are_what_hdf5_would_write(tmp_path):
    # The writer compresses and checksums Zstd chunks itself: HDF5 must read them back through
    # its filters (Zstd, then fletcher32), and the checksum must be HDF5's own, or readers
    # would reject or misread them. I-frames (level 1) are byte for byte what the filter writes.
    rng = np.random.default_rng(0)
    frames = [rng.integers(-128, 128, (64, 96, 3)).astype(np.int8),  # incompressible
              np.zeros((64, 96, 3), np.int8),
              (rng.integers(0, 3, (64, 96, 3)) * 5).astype(np.int8),
              np.arange(7, dtype=np.int8)]  # an odd number of bytes
    offset = lambda frame: (0,) * (1 + frame.ndim)  # noqa: E731
    with h5py.File(tmp_path / "f.h5", "w") as file:
        for n, frame in enumerate(frames):
            def dataset(name, **filters):
                return file.create_dataset(f"{name}{n}", (1, *frame.shape), frame.dtype,
                                           chunks=(1, *frame.shape), fletcher32=True, **filters)
            plain = dataset("plain")  # HDF5's chunk: the bytes, then HDF5's fletcher32
            plain[0] = frame
            assert plain.id.read_direct_chunk(offset(frame))[1] == (
                frame.tobytes() + fletcher32(frame.tobytes()))
            for stream in ("iframes", "mvs", "residuals"):
                direct = dataset(f"{stream}-", **FILTERS["zstd"][stream])
                data = compressor(stream).compress(frame.tobytes())
                direct.id.write_direct_chunk(offset(frame), data + fletcher32(data))
            by_hdf5 = dataset("filter", **FILTERS["zstd"]["iframes"])
            by_hdf5[0] = frame
            assert (file[f"iframes-{n}"].id.read_direct_chunk(offset(frame))
                    == by_hdf5.id.read_direct_chunk(offset(frame)))
    with h5py.File(tmp_path / "f.h5", "r") as file:
        for n, frame in enumerate(frames):
            for stream in ("iframes", "mvs", "residuals"):
                np.testing.assert_array_equal(file[f"{stream}-{n}"][0], frame)
    assert fletcher32(b"") == bytes(4) and fletcher32(b"\xff\xff") == b"\xff\xff\xff\xff"
    # a chunk long enough for the sums to wrap many times, against the formula they fold to:
    # sum1 = S1, sum2 = S2 modulo 65535, where a non-zero multiple of 65535 shows as 65535
    data = rng.integers(0, 256, 300_001, dtype=np.uint8).tobytes()
    words = np.frombuffer(data + b"\0", ">u2").astype(np.int64)
    s1, s2 = int(words.sum()), int(np.cumsum(words).sum())
    fold = lambda value: 0 if value == 0 else (value - 1) % 65535 + 1  # noqa: E731
    assert fletcher32(data) == ((fold(s2) << 16) | fold(s1)).to_bytes(4, "little")
