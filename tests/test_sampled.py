"""predict's sampled GOPs (preprocess/sampled.py): the GOPs a clip reads, re-encoded alone,
equal those of `encode` + `extract` of the whole file bit for bit; files whose frames cannot
be located by timestamp are encoded whole, and say so."""
import json
import shutil
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

import synthetic
from preprocess.decode import open_video
from preprocess.in_memory import (MEMORY_SHARD, encode_to, encoder_of, extract_in_memory,
                                  represent, sampled_in_memory, windows, work_folder)
from preprocess.sampled import CutUnfit, cut_inputs, stream_index
from preprocess.settings import EncodeSettings, ExtractSettings
from preprocess.store.chunks import ChunkError, Chunks
from teamnet.predict import ClipMaker

RECORDED = {**ExtractSettings().recorded(), "encode": {**vars(EncodeSettings()),
                                                       "size": [340, 256]}}


def ffmpeg(binary, *args):
    subprocess.run([binary, "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def inputs(clips, ffmpeg_binary, tmp_path_factory):
    """{name: path}: the sample clips as they ship and in the containers datasets use."""
    work = tmp_path_factory.mktemp("sampled")
    bikes = clips / "bikes.mp4"  # H.264 with B-frames, keyframes at its scene cuts
    made = {"bikes.mp4": bikes, "bigbuckbunny.mp4": clips / "bigbuckbunny.mp4",  # with audio
            "carphone.mp4": clips / "carphone_pristine.mp4"}  # 30000/1001 fps
    made["kinetics.webm"] = work / "kinetics.webm"  # VP9, keyframes every 40 frames
    ffmpeg(ffmpeg_binary, "-i", bikes, "-t", "6", "-c:v", "libvpx-vp9", "-deadline",
           "realtime", "-cpu-used", "8", "-g", "40", made["kinetics.webm"])
    made["ucf101.avi"] = work / "ucf101.avi"  # MPEG-4 Part 2 (xvid) in AVI, as UCF-101 ships
    ffmpeg(ffmpeg_binary, "-i", bikes, "-vf", "scale=320:240", "-c:v", "mpeg4", "-vtag",
           "xvid", "-q:v", 4, "-g", 60, made["ucf101.avi"])
    made["bunny.mkv"] = work / "bunny.mkv"
    ffmpeg(ffmpeg_binary, "-i", clips / "bigbuckbunny.mp4", "-c", "copy", made["bunny.mkv"])
    made["opengop.mp4"] = work / "opengop.mp4"  # I-frames that B-frames before them need
    ffmpeg(ffmpeg_binary, "-i", bikes, "-an", "-c:v", "libx264", "-x264-params",
           "open-gop=1:keyint=40", "-bf", 3, made["opengop.mp4"])
    made["pan.mkv"] = synthetic.write_video(work / "pan.mkv",
                                            synthetic.pan(100, 64, 96, 2, 1, seed=3))
    return made


def clip_maker(segments=8):
    return ClipMaker(("iframe", "mv", "residual"), segments, 32, 1, 1)


def representations(path, segments=8, span=None):
    """(sampled, whole): in-memory representations of a file's clip GOPs, through predict's
    path (only the frames a clip reads) and through the whole file's (or span's) encoding."""
    make, encoder = clip_maker(segments), encoder_of(RECORDED)
    sampled = represent(path, RECORDED, encoder, make.gops_to_keep, span, make.frames_read)
    with work_folder() as work:
        whole = extract_in_memory(encode_to(path, work, encoder, span), RECORDED,
                                  make.gops_to_keep)
    return sampled, whole


def assert_same(sampled, whole, segments=8):
    """The sampled GOPs hold the whole encoding's I-frames and the P-frame a clip reads (the
    5th, or a shorter GOP's last: its MVs accumulated from the four before it), the P-frames
    before it counted but unwritten (reading one fails), and give the same clip."""
    (file, index), (whole_file, whole_index) = sampled, whole
    make = clip_maker(segments)
    with file, whole_file:
        group, reference = file["videos/00000"], whole_file["videos/00000"]
        num_p = group["num_p"][()]
        np.testing.assert_array_equal(num_p, np.minimum(reference["num_p"][()], 5))
        np.testing.assert_array_equal(group["iframes"][()], reference["iframes"][()])
        for name in ("mvs", "residuals"):
            for gop, count in enumerate(num_p):
                if count:
                    np.testing.assert_array_equal(group[name][gop, count - 1],
                                                  reference[name][gop, count - 1])
                for slot in range(count - 1):
                    with pytest.raises(ChunkError, match="never written"):
                        Chunks(group[name]).read((gop, slot, 0, 0, 0))
        clip, gops = make(index, {MEMORY_SHARD: file})
        whole_clip, whole_gops = make(whole_index, {MEMORY_SHARD: whole_file})
    for modality, values in whole_clip.items():
        assert torch.equal(clip[modality], values), modality
    assert len(gops) == len(whole_gops) == segments
    video, whole_video = index["by_id"]["video"], whole_index["by_id"]["video"]
    assert {**video, "p_frames": None} == {**whole_video, "p_frames": None}


@pytest.mark.parametrize("name", ["bikes.mp4", "bigbuckbunny.mp4", "carphone.mp4",
                                  "kinetics.webm", "ucf101.avi", "bunny.mkv", "opengop.mp4",
                                  "pan.mkv"])
def test_sampled_gops_equal_those_of_the_whole_encoding(inputs, name):
    sampled, whole = representations(inputs[name])
    assert sampled[1]["decoded"] == {"decoded": "sampled GOPs"}
    num_p = sampled[1]["by_id"]["video"]["p_frames"]
    assert len(num_p) == 8 and sum(num_p) > 7 * 5  # 8 GOPs kept, read to the 5th P-frame
    assert_same(sampled, whole)


@pytest.mark.parametrize("name, how", [("bikes.mp4", "cut"), ("kinetics.webm", "cut"),
                                       ("ucf101.avi", "cut"),
                                       ("opengop.mp4", "seek + decode + re-encode")])
def test_ffmpeg_reads_packets_cut_out_of_the_source_else_seeks_in_it(inputs, name, how):
    """Packets cut out where each group's frames are the packets after its keyframe; an
    open GOP's are not (frames before an I-frame decoded after it): ffmpeg seeks there."""
    make, encoder, stages = clip_maker(), encoder_of(RECORDED), {}
    with work_folder() as work:
        sampled_in_memory(inputs[name], RECORDED, encoder, make.gops_to_keep, work,
                          reads=make.frames_read, timings=stages)[0].close()
    assert how in stages
    assert ("cut, given up" in stages) == (how != "cut"), stages


def slice_reference_idcs(packet, length_size=4):
    """The nal_ref_idc of each coded slice of an H.264 packet in MP4's form (NAL units each
    after its length): read here from the bytes, apart from FFmpeg's parser that the cut
    asks. 0 in every slice: no frame predicts from this one."""
    data, idcs, at = bytes(packet), [], 0
    while at < len(data):
        size = int.from_bytes(data[at:at + length_size], "big")
        header = data[at + length_size]
        if header & 0x1F in (1, 5):  # a slice of a non-IDR or of an IDR picture
            idcs.append(header >> 5 & 3)
        at += length_size + size
    return idcs


def test_a_cut_holds_the_packets_its_frames_need(inputs, tmp_path):
    """A cut leaves out exactly the frames that its runs do not read and no frame predicts
    from (nal_ref_idc 0), and decodes to the source's frames: every frame it gives is the
    source frame its Input names."""
    path = inputs["bikes.mp4"]  # B-frames: decode order is not presentation order
    groups = [[(40, 6)], [(140, 6), (152, 6)], [(242, 8)]]
    index = stream_index(path)
    cuts = cut_inputs(path, index, groups, tmp_path)
    with av.open(str(path)) as container:  # every frame, decoded from the start
        frames = [frame.to_ndarray() for frame in container.decode(video=0)]
        container.seek(0)
        idcs = [slice_reference_idcs(packet) for packet in container.demux(video=0)
                if packet.size]
    unreferenced = {int(index.ranks[k]) for k, found in enumerate(idcs) if max(found) == 0}
    ranks, left_out = [int(frame) for frame in index.ranks], []
    for cut, group, key in zip(cuts, groups, (30, 137, 242)):  # the keyframes before them
        # the frames of the packets from the keyframe's to the last that the group needs
        end = group[-1][0] + group[-1][1]
        spanned = set(ranks[ranks.index(key):max(k for k, frame in enumerate(ranks)
                                                 if frame < end) + 1])
        read = {frame for first, count in group for frame in range(first, first + count)}
        assert cut.frames == tuple(sorted(spanned - (unreferenced - read)))
        left_out.append(sorted(int(frame) for frame in spanned - set(cut.frames)))
        with av.open(cut.path) as container:
            got = [frame.to_ndarray() for frame in container.decode(video=0)]
        assert len(got) == len(cut.frames)
        for frame, number in zip(got, cut.frames):
            np.testing.assert_array_equal(frame, frames[number])
    # B-frames before groups 1 and 2, and in group 2's gap between its runs
    assert left_out == [[32, 34, 36, 38], [138, 146, 148, 150], []]
    with pytest.raises(CutUnfit, match="an open GOP"):
        cut_inputs(inputs["opengop.mp4"], stream_index(inputs["opengop.mp4"]),
                   [[(130, 6)]], tmp_path)


def test_cuts_that_would_take_too_much_disk_are_not_made(inputs, tmp_path, monkeypatch):
    import preprocess.sampled
    path = inputs["bikes.mp4"]
    with av.open(str(path)) as container:  # packets 30 (the keyframe) to 45 in decode order
        packets = [packet for packet in container.demux(video=0) if packet.size][30:46]
        sizes = [packet.size for packet in packets]  # the bound: every packet copied
        kept = [packet.size for packet, frame in zip(packets, stream_index(path).ranks[30:46])
                if 40 <= frame < 46 or max(slice_reference_idcs(packet)) > 0]
    monkeypatch.setattr(preprocess.sampled, "CUT_BUDGET", sum(sizes) - 1)
    with pytest.raises(CutUnfit, match="would take"):
        cut_inputs(path, stream_index(path), [[(40, 6)]], tmp_path)
    monkeypatch.setattr(preprocess.sampled, "CUT_BUDGET", sum(sizes))
    (cut,) = cut_inputs(path, stream_index(path), [[(40, 6)]], tmp_path)
    with av.open(cut.path) as container:
        assert [packet.size for packet in container.demux(video=0) if packet.size] == kept
    assert len(kept) < len(sizes)


def test_demuxing_gives_the_main_video_stream_alone(inputs):
    """The frame count's demux reads no audio: the other streams are discarded at open, so
    the demuxer skips their packets (in MP4 without reading them). Only those read while
    the streams were probed at open may still come out: 1 of 249 in MP4, 14 in Matroska."""
    for name in ("bigbuckbunny.mp4", "bunny.mkv"):
        with av.open(str(inputs[name])) as container:  # every stream read
            audio = sum(1 for packet in container.demux(audio=0) if packet.size)
        container, stream = open_video(inputs[name])
        with container:
            kept = sum(1 for packet in container.demux() if packet.size
                       and packet.stream.index != stream.index)
        assert audio > 200 and kept < audio // 10


def test_the_frame_count_comes_from_the_packets(inputs):
    index = stream_index(inputs["bikes.mp4"])
    assert (index.frames, index.rate, index.untrusted) == (250, 25, "")
    assert index.keyframes == (0, 30, 76, 137, 187, 242)  # its scene cuts
    np.testing.assert_allclose(index.times[:3], [0, 0.04, 0.08])


def avi_with(avi, target, edit):
    data = bytearray(avi.read_bytes())
    edit(data)
    target.write_bytes(bytes(data))
    return target


def wrong_count(data):  # the stream header's length (strh dwLength) says 7 frames more
    at = data.index(b"strh") + 8 + 32
    data[at:at + 4] = (int.from_bytes(data[at:at + 4], "little") + 7).to_bytes(4, "little")


def no_index(data):  # idx1 renamed: a chunk readers skip, as in a file whose index was lost
    at = data.rindex(b"idx1")
    data[at:at + 4] = b"JUNK"


def variable_rate(path):
    """An MKV whose frames come at 25 fps, then at 12.5 fps."""
    frames = synthetic.pan(60, 64, 96, 1, 0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "bgr0"
        stream.time_base = Fraction(1, 1000)
        for k, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = (40 * k if k < 30 else 1200 + 80 * (k - 30)), \
                stream.time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def undecodable(path, target):
    """A copy of path whose 33rd packet (bikes.mp4: frame 31, a B-frame between the keyframe
    at frame 30 and the sampled GOP at 36) is zeros: its frame fails to decode."""
    with av.open(str(path)) as container:
        packet = [packet for packet in container.demux(video=0) if packet.size][32]
    data = bytearray(path.read_bytes())
    data[packet.pos:packet.pos + packet.size] = bytes(packet.size)
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("make, why", [
    (lambda inputs, tmp: avi_with(inputs["ucf101.avi"], tmp / "count.avi", wrong_count),
     "the container states 257 frames, its stream holds 250"),
    (lambda inputs, tmp: avi_with(inputs["ucf101.avi"], tmp / "lost.avi", no_index),
     "an AVI without an index"),
    (lambda inputs, tmp: variable_rate(tmp / "vfr.mkv"), "a variable frame rate"),
    # ffmpeg drops the frame: the whole encoding's later frames are not those the timestamps
    # give (the sampled path's file once passed for the whole video's: it is named apart)
    (lambda inputs, tmp: undecodable(inputs["bikes.mp4"], tmp / "broken.mp4"),
     "ffmpeg failed on its sampled GOPs: Error"),
])
def test_files_whose_frames_cannot_be_located_are_encoded_whole(inputs, tmp_path, make, why):
    path = make(inputs, tmp_path)
    sampled, whole = representations(path)
    assert sampled[1]["decoded"]["decoded"] == "whole"
    assert why in sampled[1]["decoded"]["why"]
    assert_same(sampled, whole)


def test_a_window_s_gops_equal_those_of_the_window_encoded_alone(inputs):
    path = inputs["bikes.mp4"]
    spans, duration = windows(path, 4)
    assert spans == [(0, 4), (4, 7.0)] and duration == 10.0  # the last runs to the end
    for span in spans:
        sampled, whole = representations(path, 4, span)
        assert sampled[1]["decoded"] == {"decoded": "sampled GOPs"}
        assert_same(sampled, whole, 4)


def test_a_file_under_an_encoded_folder_is_checked_before_it_is_read_as_stored(
        inputs, tmp_path, ffmpeg_binary):
    # a folder whose encode-settings.json matches the checkpoint's encoding: its files are
    # read as stored only where they are what encode writes
    folder = tmp_path / "encoded"
    folder.mkdir()
    (folder / "encode-settings.json").write_text(json.dumps({**RECORDED["encode"],
                                                             "ffmpeg": None}))
    large = folder / "large.mp4"  # MPEG-4 Part 2, strict GOPs, but 640x480
    ffmpeg(ffmpeg_binary, "-i", inputs["bikes.mp4"], "-vf", "scale=640:480", "-c:v", "mpeg4",
           "-g", 12, "-bf", 0, "-q:v", 1, large)
    h264 = folder / "h264.mp4"
    shutil.copyfile(inputs["bikes.mp4"], h264)
    for path, problem in ((large, "it is 640x480, not 340x256"), (h264, "its codec is h264")):
        sampled, whole = representations(path)
        assert sampled[1]["decoded"]["decoded"] == "sampled GOPs"
        assert problem in sampled[1]["decoded"]["note"]
        assert_same(sampled, whole)


def test_sampled_gops_of_a_large_video_made_by_several_ffmpeg_equal_the_whole(inputs,
                                                                             monkeypatch):
    import preprocess.sampled
    # a budget of one 640x272 input a process: its 3 seeks in 3 ffmpeg, joined (a 4K
    # input gets 3 a process from the default budget)
    monkeypatch.setattr(preprocess.sampled, "MEMORY_BUDGET", 16 * 640 * 272 * 3 // 2)
    assert len(preprocess.sampled.batches([[(0, 6)]] * 3, 640 * 272 * 3 // 2)) == 3
    sampled, whole = representations(inputs["bikes.mp4"])
    assert sampled[1]["decoded"] == {"decoded": "sampled GOPs"}
    assert_same(sampled, whole)


def test_windows_are_bounded_by_the_frames_a_file_holds(tmp_path):
    path = tmp_path / "two.mkv"  # 2 frames, the second 20,000 s after the first
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "bgr0"
        stream.time_base = Fraction(1, 1000)
        for pts, pixels in zip((0, 20_000_000), synthetic.pan(2, 64, 96, 1, 0)):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = pts, stream.time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    spans, _ = windows(path, 10)
    assert len(spans) <= 2  # not 2,000 re-encodes
