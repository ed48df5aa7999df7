"""`teamnet encode`: strict GOP from real clips, bad inputs, odd names, resumption."""
import json
import os

import av
import numpy as np
import pytest

import synthetic
from preprocess.decode import frame_types
from preprocess.discover import DatasetError
from preprocess.errors import SetupError
from preprocess.settings import EncodeSettings, ParallelSettings
from preprocess.encode import (REPORT_NAME, SETTINGS_NAME, encode_dataset, find_ffmpeg,
                               output_size)


def streams(path):
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        return ([s.type for s in container.streams], video.codec_context.name,
                video.codec_context.width, video.codec_context.height)


def test_real_clips_get_a_strict_gop(tmp_path, clips, ffmpeg_binary):
    # bikes: H.264 with B-frames and scene cuts; bigbuckbunny: H.264 with AAC audio
    for name in ("bikes.mp4", "bigbuckbunny.mp4"):
        (tmp_path / "raw" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "raw" / name).write_bytes((clips / name).read_bytes())
    assert "B" in frame_types(tmp_path / "raw" / "bikes.mp4")  # the test means something
    settings = EncodeSettings(ffmpeg=ffmpeg_binary)
    results, _ = encode_dataset(tmp_path / "raw", tmp_path / "out", settings,
                                ParallelSettings(workers=2))
    assert sorted(r.status for r in results) == ["encoded", "encoded"]
    for name, frames in (("bikes.mp4", 250), ("bigbuckbunny.mp4", 132)):
        types = frame_types(tmp_path / "out" / name)
        assert types == "".join("P" if i % 12 else "I" for i in range(frames))
        assert streams(tmp_path / "out" / name) == (["video"], "mpeg4", 340, 256)  # no audio


def test_short_side_keeps_aspect_ratio(tmp_path, clips, ffmpeg_binary):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "bbb.mp4").write_bytes((clips / "bigbuckbunny.mp4").read_bytes())
    settings = EncodeSettings(short_side=128, ffmpeg=ffmpeg_binary)
    encode_dataset(tmp_path / "raw", tmp_path / "out", settings)
    assert streams(tmp_path / "out" / "bbb.mp4")[2:] == (228, 128)  # 1280x720 -> 227.6 -> even
    assert output_size(720, 1280, settings) == (128, 228)
    assert output_size(640, 480, EncodeSettings()) == (340, 256)


def write_audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = np.zeros((1, 16000), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())


def test_bad_inputs_fail_by_name_and_others_are_done(tmp_path, clips, ffmpeg_binary):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "good.mp4").write_bytes((clips / "carphone_distorted.mp4").read_bytes())
    (raw / "empty.mp4").write_bytes(b"")
    (raw / "text.mp4").write_text("this is not a video\n")
    data = (clips / "bikes.mp4").read_bytes()
    (raw / "truncated.mp4").write_bytes(data[:len(data) // 3])
    write_audio_only(raw / "audio.mp4")
    results = {os.path.basename(r.source): r for r in encode_dataset(
        raw, tmp_path / "out", EncodeSettings(ffmpeg=ffmpeg_binary),
        ParallelSettings(workers=2))[0]}
    assert results["good.mp4"].status == "encoded"
    reasons = {name: r.reason for name, r in results.items() if r.status == "failed"}
    assert set(reasons) == {"empty.mp4", "text.mp4", "truncated.mp4", "audio.mp4"}
    assert "empty file" in reasons["empty.mp4"]
    assert "not a readable video" in reasons["text.mp4"]
    assert "no video stream" in reasons["audio.mp4"] and "audio" in reasons["audio.mp4"]
    report = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert report["encoded"] == 1 and report["failed"] == 4
    assert {os.path.basename(f["path"]) for f in report["failures"]} == set(reasons)
    # nothing half-written is visible
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        REPORT_NAME, SETTINGS_NAME, "good.mp4"]  # and no temporary file left


def test_odd_file_names(tmp_path, ffmpeg_binary):
    names = ["with space.mkv", "it's \"quoted\".mkv", "ünïcødé 日本.mkv", "-leading-dash.mkv",
             "colon:name.mkv", "semi;colon $(touch pwned).mkv"]
    frames = synthetic.pan(13, 64, 96, 1, 1)
    (tmp_path / "raw" / "folder with space").mkdir(parents=True)
    for name in names:
        synthetic.write_video(tmp_path / "raw" / "folder with space" / name, frames)
    results, _ = encode_dataset(tmp_path / "raw", tmp_path / "out",
                                EncodeSettings(size=(96, 64), ffmpeg=ffmpeg_binary))
    assert [r.status for r in results] == ["encoded"] * len(names)
    for name in names:
        out = tmp_path / "out" / "folder with space" / name.replace(".mkv", ".mp4")
        assert frame_types(out) == "I" + "P" * 11 + "I"
    assert not (tmp_path / "pwned").exists() and not any(tmp_path.rglob("pwned"))


def test_rerun_skips_finished_outputs_and_ignores_leftovers(tmp_path, ffmpeg_binary):
    frames = synthetic.pan(12, 64, 96, 1, 0)
    (tmp_path / "raw").mkdir()
    for name in ("a.mkv", "b.mkv"):
        synthetic.write_video(tmp_path / "raw" / name, frames)
    settings = EncodeSettings(size=(96, 64), ffmpeg=ffmpeg_binary)
    encode_dataset(tmp_path / "raw", tmp_path / "out", settings)
    finished = (tmp_path / "out" / "a.mp4").stat().st_mtime_ns
    # as if a run had been killed while writing b: its temporary file is left, no b.mp4
    (tmp_path / "out" / "b.mp4").unlink()
    (tmp_path / "out" / ".b.mp4.partial").write_bytes(b"half a file")
    results, _ = encode_dataset(tmp_path / "raw", tmp_path / "out", settings)
    assert [(os.path.basename(r.source), r.status) for r in results] == [
        ("a.mkv", "skipped"), ("b.mkv", "encoded")]
    assert (tmp_path / "out" / "a.mp4").stat().st_mtime_ns == finished
    assert frame_types(tmp_path / "out" / "b.mp4") == "I" + "P" * 11
    assert not (tmp_path / "out" / ".b.mp4.partial").exists()


def test_clashing_ids_are_refused(tmp_path, ffmpeg_binary):
    frames = synthetic.pan(3, 64, 96, 1, 0)
    (tmp_path / "raw").mkdir()
    synthetic.write_video(tmp_path / "raw" / "clip.mkv", frames)
    synthetic.write_video(tmp_path / "raw" / "clip.MKV.avi", frames)  # a different id: fine
    synthetic.write_video(tmp_path / "raw" / "CLIP2.mkv", frames)
    (tmp_path / "raw" / "clip.avi").write_bytes((tmp_path / "raw" / "clip.mkv").read_bytes())
    with pytest.raises(DatasetError, match="clip.avi.*clip.mkv.*share the id 'clip'"):
        encode_dataset(tmp_path / "raw", tmp_path / "out", EncodeSettings(ffmpeg=ffmpeg_binary))


def test_refuses_an_empty_source_or_a_target_inside_it(tmp_path, ffmpeg_binary):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "notes.txt").write_text("no videos here")
    with pytest.raises(DatasetError, match="no videos .*avi.*mp4"):
        encode_dataset(tmp_path / "raw", tmp_path / "out", EncodeSettings(ffmpeg=ffmpeg_binary))
    synthetic.write_video(tmp_path / "raw" / "a.mkv", synthetic.pan(2, 64, 96, 1, 0))
    with pytest.raises(DatasetError, match="is inside"):
        encode_dataset(tmp_path / "raw", tmp_path / "raw" / "out", EncodeSettings(ffmpeg=ffmpeg_binary))


def test_ffmpeg_lookup_order(tmp_path, monkeypatch):
    import imageio_ffmpeg
    bundled = imageio_ffmpeg.get_ffmpeg_exe()
    on_path, from_env = tmp_path / "path" / "ffmpeg", tmp_path / "env" / "my-ffmpeg"
    for link in (on_path, from_env):
        link.parent.mkdir()
        link.symlink_to(bundled)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("TEAMNET_FFMPEG", raising=False)
    assert find_ffmpeg() == bundled
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_ffmpeg() == str(on_path)
    monkeypatch.setenv("TEAMNET_FFMPEG", str(from_env))
    assert find_ffmpeg() == str(from_env)
    assert find_ffmpeg(bundled) == bundled
    with pytest.raises(SetupError, match="--ffmpeg=/no/such"):
        find_ffmpeg("/no/such")


ENCODE_ON = """
import hashlib, os, sys
from pathlib import Path
import av
os.sched_setaffinity(0, set(range(int(sys.argv[3]))))
from preprocess.encode import encode_video, find_ffmpeg
from preprocess.settings import EncodeSettings
target = Path(sys.argv[2])
result = encode_video(Path(sys.argv[1]), target, EncodeSettings(ffmpeg=find_ffmpeg()))
assert result.status == "encoded", result
with av.open(str(target)) as container:
    digest = hashlib.sha256(b"".join(bytes(p) for p in container.demux(video=0)))
print(digest.hexdigest())
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to compare")
def test_the_encoding_does_not_depend_on_the_machine_s_cores(tmp_path, clips):
    # ffmpeg's mpeg4 encoder made one slice a thread, and its threads followed the cores:
    # the same file encoded on two machines gave two bitstreams (and representations)
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).parent.parent
    made = [subprocess.run([sys.executable, "-c", ENCODE_ON, str(clips / "bikes.mp4"),
                            str(tmp_path / f"on{cores}.mp4"), str(cores)], cwd=root,
                           capture_output=True, text=True, check=True).stdout.strip()
            for cores in (1, 2)]
    assert made[0] == made[1]  # the same packets, byte for byte
