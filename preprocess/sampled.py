"""Only the GOPs a clip reads, exactly as the whole video's encoding gives them (`predict`).

The strict-GOP encoding (encode.py) starts every GOP with an I-frame and predicts each P-frame
from earlier frames of its own GOP, at a fixed quantiser: the representation of GOP g
depends on its own frames alone, source frames gop*g to gop*g + gop - 1 (measured: the same
pixels and every motion vector field, tests/test_sampled.py). So a clip's GOPs can be made
from those frames alone: ffmpeg decodes each sampled GOP from the source keyframe before it
(one input a group of GOPs that share a keyframe interval) up to its last frame, and encodes
the sampled GOPs back to back, scaled and encoded exactly as `teamnet encode` does. The cost
then follows the number of segments and the source's keyframe spacing, not its length.

Each input is a file of its own (cut_inputs): the source's packets from the keyframe before
its group to the last packet the group's frames need, copied by PyAV into a small Matroska
file, no decoding. Opening the long source once a group instead makes ffmpeg parse its
whole container index each time, a cost that grows with the length (BENCHMARKS.md: 0.08-0.24
s of 0.6-1.8 s at 30 minutes). The packets and the stream's parameters (colours, chroma
siting, rotation) are the source's, so ffmpeg's decoder gives the same frames. Where a cut
cannot be made (frames decoded before their keyframe, a codec Matroska does not hold, more
than CUT_BUDGET of packets), ffmpeg seeks in the source itself (seek_inputs).

This rests on knowing which decoded frame the whole encoding would make frame i: the i-th
frame in presentation order, where the container's timestamps are those of a constant frame
rate from the file's start (ffmpeg then neither drops nor duplicates a frame). The frames
are counted and their timestamps checked by demuxing, without decoding (stream_index); a
file that fails a check (no index to seek with, timestamps that go back or are missing,
variable frame rate, a video that starts after the file, an edit list, a frame count that
disagrees with the container's) is encoded whole instead, and its result says so and why.
"""
import os
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import ffmpeg
import numpy as np
from av.bitstream import BitStreamFilterContext

from .decode import open_video
from .encode import compiled, encoder_options, scaled

# how far (in frames) a timestamp may stray from a constant frame rate's: well inside the
# 0.6 and 1.1 frame thresholds at which ffmpeg's constant-rate output drops or repeats one
DRIFT = 0.25
START_DRIFT = 0.1  # a video this much after the file's start gets a frame more
MEMORY_BUDGET = 512 * 2**20  # bytes of decoded frames one ffmpeg may hold for its inputs
INPUT_FRAMES = 16  # decoded frames an input holds at most: reference frames and queues
CUT_BUDGET = 256 * 2**20  # bytes of packets one ffmpeg's inputs may copy into cuts


@dataclass(frozen=True)
class StreamIndex:
    """A video stream as demuxing shows it: its frames in presentation order."""
    frames: int
    times: np.ndarray  # each frame's time from the file's start, seconds
    keyframes: tuple  # the frame numbers a decoder can start at, ascending
    rate: Fraction  # frames a second
    untrusted: str = ""  # why its frames cannot be located by timestamp ('' where they can)
    pts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # each frame's
    ranks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # each packet's
    # frame number, packets in decode order
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # each packet's
    # bytes, in decode order


def stream_index(path):
    """The StreamIndex of a file's main video stream, from its packets alone. Kept for the
    few files last asked about (as long as they are unchanged): `--window` asks once a
    window, and a demux of an hour's packets takes most of a second."""
    status = os.stat(path)
    return _stream_index(str(path), status.st_size, status.st_mtime_ns)


@lru_cache(maxsize=4)
def _stream_index(path, _size, _mtime_ns):
    container, stream = open_video(path)
    with container:
        packets = [(packet.pts, packet.dts, packet.is_keyframe, packet.is_discard
                    or packet.is_corrupt, packet.size) for packet in container.demux(stream)
                   if packet.size]
        declared, base, rate = stream.frames, stream.time_base, stream.guessed_rate
        start = (container.start_time or 0) / 1_000_000
        avi = container.format.name == "avi"
    rate = Fraction(rate or 0)
    why = _untrusted(packets, declared, rate, base, avi and not _avi_indexed(path))
    if why:
        return StreamIndex(len(packets), np.zeros(0), (), rate, why)
    pts = np.array([packet[0] for packet in packets], np.int64)
    order = np.argsort(pts, kind="stable")
    times = pts[order] * float(base) - start
    if (np.diff(times) <= 0).any() or (np.diff([packet[1] for packet in packets]) <= 0).any():
        return StreamIndex(len(packets), np.zeros(0), (), rate,
                           "timestamps that go back or repeat")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))  # each packet's frame number
    keyframes = tuple(sorted(int(rank[i]) for i, packet in enumerate(packets) if packet[2]))
    sizes = np.array([packet[4] for packet in packets], np.int64)
    return StreamIndex(len(packets), times, keyframes, rate,
                       _irregular(times, keyframes, rate), pts[order], rank, sizes)


def _untrusted(packets, declared, rate, base, avi_without_index):
    """Why the packets of a stream cannot locate its frames, or '' (their order is checked
    once they are arrays, in _stream_index)."""
    if not packets:
        return "no video packets"
    if avi_without_index:
        return "an AVI without an index (seeking in it is not exact)"
    if any(pts is None or dts is None for pts, dts, *_ in packets) or not rate or not base:
        return "packets without timestamps or frame rate"
    if any(hidden for _, _, _, hidden, _ in packets):
        return "packets marked to be discarded (an edit list) or corrupt"
    if declared and declared != len(packets):
        return f"the container states {declared} frames, its stream holds {len(packets)}"
    return ""


def _irregular(times, keyframes, rate):
    """Why frame i is not the i-th frame of a constant rate from the file's start, or ''."""
    if not keyframes or keyframes[0] != 0:
        return "the first frame is not a keyframe (an open GOP)"
    if abs(times[0]) * float(rate) > START_DRIFT:
        return f"the video starts {times[0]:.3f} s after the file"
    worst = float(np.abs(times * float(rate) - np.arange(len(times))).max())
    if worst > DRIFT:
        return f"a variable frame rate (a frame {worst:.2f} frames off {rate} fps)"
    return ""


def _avi_indexed(path):
    """Whether an AVI file has an index (idx1, or OpenDML's indx): its top-level chunks read."""
    with open(path, "rb") as file:
        if file.read(12)[8:12] != b"AVI ":
            return False
        while header := file.read(8):
            if len(header) < 8:
                return False
            kind, size = header[:4], int.from_bytes(header[4:], "little")
            if kind == b"idx1":
                return True
            if kind == b"LIST" and file.read(4) == b"hdrl":
                if b"indx" in file.read(min(size - 4, 1 << 20)):
                    return True
                continue
            if kind == b"LIST":
                size -= 4
            file.seek(size + (size & 1), 1)
    return False


def seek_groups(index, runs):
    """Runs [(first frame, count)] grouped by the seek that reaches them: a run joins the
    group before it where no source keyframe lies between them (decoding on is cheaper
    than seeking back to the same keyframe)."""
    groups = []
    for first, count in runs:
        last = groups[-1][-1][0] + groups[-1][-1][1] if groups else 0
        if groups and not any(last < key <= first for key in index.keyframes):
            groups[-1].append((first, count))
        else:
            groups.append([(first, count)])
    return groups


def batches(groups, frame_bytes):
    """Groups split into the inputs of one ffmpeg each: ffmpeg opens every input at once,
    and each holds about INPUT_FRAMES decoded frames, so at most MEMORY_BUDGET of them."""
    per_process = max(1, int(MEMORY_BUDGET // (INPUT_FRAMES * frame_bytes)))
    return [groups[k:k + per_process] for k in range(0, len(groups), per_process)]


@dataclass(frozen=True)
class Input:
    """One input of the ffmpeg that encodes sampled GOPs: a file, the number of its video
    stream, the options that open it, and the source frames it decodes to, in order (its
    decoded frame k is source frame frames[k]): a cut's, from the keyframe it starts at,
    less the frames left out of it (_unreferenced); a seek's, from its group's first frame
    on."""
    path: str
    stream: int
    frames: tuple | range
    options: dict = field(default_factory=dict)

    def position(self, frame):
        """k where source frame `frame` is the input's decoded frame k: CutUnfit where it
        is not among them (no frame a clip reads is left out; this says so)."""
        k = bisect_left(self.frames, frame)
        if k == len(self.frames) or self.frames[k] != frame:
            raise CutUnfit(f"source frame {frame} is not among those of {self.path}")
        return k


class CutUnfit(Exception):
    """Groups whose packets cannot be cut out alone: ffmpeg seeks in the source instead."""


def seek_inputs(source, index, groups, stream):
    """One input a group: the source itself, sought to half a frame before the group's
    first frame, which is then the first at or after the seek whatever the rounding of the
    timestamps (ffmpeg drops the frames it decodes before the seek point)."""
    inputs = []
    for group in groups:
        start = group[0][0]
        seek = {"ss": f"{index.times[start] - 0.5 / float(index.rate):.6f}"} if start else {}
        inputs.append(Input(str(source), stream, range(start, index.frames), seek))
    return inputs


def cut_inputs(source, index, groups, folder):
    """One input a group: folder/cut-K.mkv, the source's packets in decode order from the
    keyframe at or before the group's first frame to the last packet that its frames need,
    copied by PyAV with the stream's parameters (no decoding), less the frames that its runs
    do not read and no frame predicts from (_unreferenced: nothing needs them decoded). Each
    packet is checked to be the one the index puts there; CutUnfit where a group cannot be
    cut so."""
    spans = [packet_span(index, group[0][0], group[-1][0] + group[-1][1]) for group in groups]
    size = sum(int(index.sizes[packets].sum()) for packets in spans)
    if size > CUT_BUDGET:  # a source of huge packets: temporary files would be as large
        raise CutUnfit(f"its cuts would take {size / 2**20:.0f} MiB")
    container, stream = open_video(source)
    inputs = []
    with container:
        for number, (packets, group) in enumerate(zip(spans, groups)):
            path = Path(folder) / f"cut-{number}.mkv"
            ranks = index.ranks[packets]  # the packets' frame numbers
            read = np.zeros(len(ranks), bool)
            for first, count in group:
                read |= (ranks >= first) & (ranks < first + count)
            try:
                kept = _copy_packets(container, stream, index.pts[ranks], ~read, path)
            except (av.FFmpegError, OSError, UnicodeError) as error:  # a codec Matroska
                raise CutUnfit(f"cannot cut its packets: {error}") from None  # cannot hold
            inputs.append(Input(str(path), 0, tuple(int(k) for k in np.sort(ranks[kept]))))
    return inputs


def packet_span(index, start, end):
    """The slice of packets, in decode order, from that of the last keyframe at or before
    frame start to the last that frames before `end` need (a frame needs the packets
    decoded before it). CutUnfit where those packets hold a frame before the keyframe or
    lack one after it (open GOPs)."""
    key = index.keyframes[bisect_right(index.keyframes, start) - 1]
    ranks = index.ranks
    first = int(np.flatnonzero(ranks == key)[0])
    last = int(np.flatnonzero(ranks < end).max())
    wanted = ranks[first:last + 1]
    if wanted.min() < key or np.count_nonzero(wanted < end) != end - key:
        raise CutUnfit(f"the frames after keyframe {key} are not the packets after it "
                       "(an open GOP)")
    return slice(first, last + 1)


def _copy_packets(container, stream, wanted_pts, unread, path):
    """Copy the packets of presentation times wanted_pts (decode order, the first a
    keyframe's) from an open container into a new Matroska file at path, except those
    unread[k] marks (frames the clip does not read) that no frame predicts from. Returns
    which were copied (a mask)."""
    key_pts, unreferenced = wanted_pts[0], _unreferenced(stream)
    container.seek(int(key_pts), backward=True, stream=stream)
    kept = np.ones(len(wanted_pts), bool)
    with av.open(str(path), "w", format="matroska") as output:
        target = output.add_stream_from_template(stream)
        seen = 0
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if seen == 0 and packet.pts != key_pts:
                continue  # before the keyframe: the seek lands at or before it
            if packet.pts != wanted_pts[seen]:
                raise CutUnfit(f"packet {seen} after keyframe {key_pts} has time "
                               f"{packet.pts}, the index says {wanted_pts[seen]}")
            if seen and unread[seen] and unreferenced(packet):  # never the keyframe
                kept[seen] = False
            else:
                packet.stream = target
                output.mux(packet)
            seen += 1
            if seen == len(wanted_pts):
                return kept
    raise CutUnfit(f"the file ends before the packets of keyframe {key_pts}")


def _unreferenced(stream):
    """A test of whether a packet holds a frame that no other frame predicts from, for
    H.264 (every slice with nal_ref_idc 0: a picture "not used for reference", which the
    standard lets a decoder drop); false for every packet of other codecs, where that is
    not as plain (an H.265 "sub-layer non-reference" picture may be a reference for higher
    layers). Such frames, unless a run reads them, are decoded only to be dropped: leaving
    them out of a cut spares a quarter to a third of the frames decoded (BENCHMARKS.md).
    FFmpeg's own parser decides (the filter_units bitstream filter, which drops them), on a
    copy of each packet: a filter takes its packet's data."""
    if stream.codec_context.name != "h264":
        return lambda packet: False
    units = BitStreamFilterContext("filter_units=discard=nonref", stream)
    return lambda packet: not any(out.size for out in units.filter(av.Packet(bytes(packet))))


def encode_runs(inputs, target, groups, size, settings):
    """The ffmpeg argument list that encodes the source frames of groups of runs
    [[(first frame, count), ...], ...] (seek_groups), back to back, into target, as `teamnet
    encode` encodes them: one input a group (seek_inputs, cut_inputs), read to its last
    frame, the frames before its first and between its runs dropped (trim, select), groups
    joined (concat). Every run of a strict GOP starts a GOP of the output."""
    parts = []
    for number, (group, source) in enumerate(zip(groups, inputs)):
        video = ffmpeg.input(f"SOURCE-{number}.mkv", threads=1,
                             **source.options)[f"v:{source.stream}"]
        # the frames the input gives before the group's first, and to its last (the input
        # ends there: nothing after it decoded); then each run's, counted from the first
        final = group[-1][0] + group[-1][1] - 1  # the last frame the group reads
        start, end = source.position(group[0][0]), source.position(final) + 1
        runs = [(source.position(first) - start, source.position(first + count - 1) - start)
                for first, count in group]
        video = video.trim(**({"start_frame": start} if start else {}), end_frame=end)
        if sum(count for _, count in group) < end - start:
            video = video.filter("select", "+".join(f"between(n,{first},{last})"
                                                    for first, last in runs))
        parts.append(scaled(video, *size))
    video = parts[0] if len(parts) == 1 else ffmpeg.concat(*parts, v=1, a=0)
    # frames as they come: the runs' timestamps have gaps, which a constant-rate output
    # would fill with copies
    output = ffmpeg.output(video, "TARGET.mp4", fps_mode="passthrough",
                           **encoder_options(settings))
    # -xerror: a packet that fails to decode stops ffmpeg (the whole video is then encoded):
    # its frame would be missing, and the frames after it taken for others
    return compiled(output.global_args("-filter_complex_threads", "1", "-xerror"), settings,
                    [source.path for source in inputs], target)


def join_command(listing, target, settings):
    """The ffmpeg argument list that joins the encodings a concat listing names into target,
    packets copied (the same encoder settings: one stream)."""
    output = ffmpeg.input("SOURCE.mkv", format="concat", safe=0).output("TARGET.mp4", c="copy")
    return compiled(output, settings, listing, target)
