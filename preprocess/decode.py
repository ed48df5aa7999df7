"""Decoding with PyAV: frame types, RGB pixels and FFmpeg's exported motion vectors.

One decoder thread per process: extraction runs one process per core, and MPEG-4 Part 2
decoding is single-threaded anyway unless frame threading is asked for.
"""
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.sidedata.sidedata import SideDataContainer
from av.stream import Discard, Disposition
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from .errors import TeamnetError

ENCODE_HINT = "re-encode it with `teamnet encode` first"


class VideoError(TeamnetError):
    """A video that cannot be processed; the message says why and what to do."""


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    width: int  # as displayed: a phone video's rotation (below) already applied
    height: int
    fps: float
    frames: int  # as declared by the container, else estimated from its duration (0: unknown)
    rotation: int = 0  # degrees of display rotation (ffmpeg applies it when it re-encodes)
    stream: int = 0  # which of the file's video streams (main_stream): ffmpeg's v:N


def _seconds(stream):
    """A stream's duration in seconds, from the stream or its DURATION tag (Matroska), or 0."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    hours, _, rest = (stream.metadata.get("DURATION") or "").partition(":")
    minutes, _, seconds = rest.partition(":")
    try:
        return 3600 * int(hours) + 60 * int(minutes) + float(seconds)
    except ValueError:
        return 0.0


def main_stream(container):
    """The video stream a player would show, as ffmpeg picks it: never cover art (an attached
    picture); the one marked default, else the largest picture, else the longest; the first
    of equals. A file may hold a one-frame still before its video."""
    streams = list(container.streams.video)
    pictures = [s for s in streams if not s.disposition & Disposition.attached_pic] or streams
    area = lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0)  # noqa: E731
    return max(pictures, key=lambda s: (bool(s.disposition & Disposition.default), area(s),
                                        _seconds(s), -streams.index(s)))


def open_video(path):
    """Open a file with PyAV; returns (container, its main video stream) or raises VideoError.
    The container's other streams are discarded: demuxing it gives the main stream's packets
    alone."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:  # a path longer than PATH_MAX, a folder that cannot be listed
        raise VideoError(f"cannot be read: {error.strerror}") from None
    if size == 0:
        raise VideoError("empty file (0 bytes)")
    source = str(path)
    try:  # PyAV takes file names as UTF-8 only: a file object for any other name
        source.encode("utf-8")
    except UnicodeEncodeError:
        source = open(path, "rb")  # closed with the container's last reference
    try:
        container = av.open(source)
    except av.FFmpegError as error:
        raise VideoError(f"not a readable video: {error}") from None
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        container.close()
        raise VideoError(f"no video stream (contains: {kinds})")
    stream = main_stream(container)
    for other in container.streams:  # never read here: the demuxer skips their packets,
        if other.index != stream.index:  # which in MP4 it then does not even read
            other.discard = Discard.all  # (audio: a third of a demux's time, BENCHMARKS.md)
    return container, stream


def probe(path):
    """Codec, displayed size, frame rate, frame count and rotation of a file's main video
    stream (main_stream), and which of its video streams that is."""
    container, stream = open_video(path)
    with container:
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        frames = stream.frames or round((container.duration or 0) / 1e6 * fps)
        try:  # the display rotation travels with the decoded frames
            rotation = int(next(container.decode(stream)).rotation) % 360
        except (av.FFmpegError, StopIteration):
            rotation = 0
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(stream.codec_context.name, width, height, fps, frames, rotation,
                         list(container.streams.video).index(stream))


def frame_types(path):
    """The picture type of every frame in decode order ('I', 'P', 'B', ...), as one string."""
    container, stream = open_video(path)
    with container:
        stream.thread_type = "AUTO"  # only types matter here; let the decoder use the cores
        try:
            return "".join(PictureType(frame.pict_type).name for frame in container.decode(stream))
        except av.FFmpegError as error:
            raise VideoError(f"decoding failed: {error}") from None


class RGBConverter:
    """Decoded frames' pixels as (H, W, 3) uint8 RGB, through one swscale context kept for a
    whole video, with one thread. `frame.to_ndarray(format="rgb24")` gives the same values but
    builds a new context, with automatic threading, for every frame: measured about 10x the
    cost, and worse when other processes keep the cores busy."""

    def __init__(self):
        self.reformatter = VideoReformatter()

    def __call__(self, frame):
        return self.reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()


def motion_records(frame):
    """A frame's motion vectors as FFmpeg's structured array, or None: a view of the frame's
    side data, which it keeps alive while the array is in use.

    Read through a side-data container of our own: `frame.side_data` keeps its container in
    the frame, and the container refers back to the frame, so every frame read that way
    became cyclic garbage, holding its picture buffers until a garbage collection. PyAV makes
    a frame's Python object before decoding into it, so collections kept finding one alive
    and moving it to the oldest generation, where it stayed: a worker grew about 5 MB a video
    (BENCHMARKS.md). Without the cycle a frame is freed as soon as it is dropped."""
    vectors = SideDataContainer(frame).get("MOTION_VECTORS")
    return None if vectors is None else vectors.to_ndarray()


def decode_with_motion(path, runs=None):
    """Yield (is_iframe, frame, motion_records) for every frame of a strict-GOP MPEG-4 Part 2
    file, or only for the frames of runs [(first frame, count)], each starting at an I-frame
    (read by seeking to it: nothing else is decoded).

    frame is PyAV's decoded frame (pixels through an RGBConverter, only where needed);
    motion_records is FFmpeg's structured array of motion vectors for a P-frame (None for
    I-frames and all-intra P-frames). Anything that is not I- then P-frames of
    MPEG-4 Part 2 raises VideoError telling the user to run `teamnet encode`.
    """
    container, stream = open_video(path)
    with container:
        codec = stream.codec_context.name
        if codec != "mpeg4":
            raise VideoError(f"codec is {codec}, not MPEG-4 Part 2 (mpeg4); {ENCODE_HINT}")
        stream.thread_count = 1
        stream.codec_context.options = {"flags2": "+export_mvs"}
        index = -1
        try:
            frames = container.decode(stream) if runs is None else _runs(container, stream,
                                                                          runs)
            for index, frame in enumerate(frames):
                kind = PictureType(frame.pict_type).name
                if index == 0 and kind != "I":
                    raise VideoError(f"first frame is a {kind}-frame, not an I-frame; {ENCODE_HINT}")
                if kind == "I":
                    yield True, frame, None
                elif kind == "P":
                    records = motion_records(frame)
                    if records is not None and np.any(records["source"] > 0):
                        raise VideoError(f"frame {index} predicts from a future frame; {ENCODE_HINT}")
                    yield False, frame, records
                else:
                    raise VideoError(f"frame {index} is a {kind}-frame (only I and P are "
                                     f"supported); {ENCODE_HINT}")
        except av.FFmpegError as error:
            raise VideoError(f"decoding failed after frame {index}: {error}") from None
        if index < 0:
            raise VideoError("no decodable frames")


def _runs(container, stream, runs):
    """The decoded frames of runs [(first frame, count)] of a stream whose runs start at
    keyframes, in order: a seek to each run, then its frames. Frame i's timestamp is taken
    as i frame durations (a constant-rate encoding from 0, as encode writes), checked on the
    frame found there; where it does not hold, the timestamps are read from the packets."""
    rate, base = stream.average_rate or stream.guessed_rate, stream.time_base
    stamp_of = (lambda i: round(i / (rate * base))) if rate and base else None
    demuxed = False
    for first, count in runs:
        start, frames = _seek(container, stream, stamp_of, first)
        if start is None and not demuxed:  # not a constant rate from 0: ask the packets
            container.seek(0, stream=stream)
            stamps = sorted(packet.pts for packet in container.demux(stream)
                            if packet.size and packet.pts is not None)
            stamp_of, demuxed = stamps.__getitem__, True
            start, frames = _seek(container, stream, stamp_of, first)
        if start is None:
            raise VideoError(f"no frame {first} where a strict-GOP encoding puts it")
        yield start
        taken = 1
        for frame in frames:
            if taken == count:
                break
            yield frame
            taken += 1
        if taken < count:
            raise VideoError(f"decoding stopped {count - taken} frame(s) short of frame "
                             f"{first + count - 1}")


def _seek(container, stream, stamp_of, frame):
    """(the decoded frame number `frame`, the frames after it) by seeking to its timestamp
    stamp_of(frame); (None, None) where no I-frame (a run's start) has that timestamp."""
    try:
        stamp = stamp_of(frame) if stamp_of else None
    except IndexError:
        return None, None
    if stamp is None:
        return None, None
    container.seek(stamp, stream=stream)  # to the keyframe at or before it
    frames = (f for f in container.decode(stream) if f.pts is not None and f.pts >= stamp)
    start = next(frames, None)
    found = start is not None and start.pts == stamp and PictureType(start.pict_type).name == "I"
    return (start, frames) if found else (None, None)
