"""One video from any file ffmpeg reads to the stored representation, without a dataset.

The GOPs a clip reads are re-encoded in a temporary folder with the encoding a dataset
records (its settings' "encode"): those GOPs alone where they can be located exactly
(sampled.py), else the whole video; then extracted into an HDF5 file held in memory (h5py's
core driver, no backing store): no shard is written. Values are those `extract` would have
stored, so a model sees a new video exactly as it saw its dataset's videos (`teamnet
predict`).
"""
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import h5py

from .atomic import owner_tag
from .decode import VideoError, probe
from .discover import DatasetError, Video
from .encode import (encode_video, find_ffmpeg, from_recorded, output_size, recorded_stamp,
                     settings_of)
from .extract import extract_video
from .sampled import (CutUnfit, batches, cut_inputs, encode_runs, join_command, seek_groups,
                      seek_inputs, stream_index)
from .settings import ExtractSettings
from .store.index import entry

MEMORY_SHARD = "in-memory"  # the shard name the index of an in-memory video gives
WORK_PREFIX = "teamnet-predict-"  # + HOST-PID- + random: a predict run's temporary folder
GRACE_S = 60.0  # a work folder younger than this is never removed (work_folder)
WORK_MARK = ".teamnet-predict-work"  # inside each work folder: it is predict's


def encoder_of(recorded, ffmpeg=None):
    """The EncodeSettings a dataset's recorded settings name, with an ffmpeg binary found."""
    if not recorded.get("encode"):
        raise DatasetError("the dataset records no encoding (its videos did not come from "
                           "`teamnet encode`, or it was extracted by an older version): extract "
                           "its `teamnet encode` output folder again")
    return replace(from_recorded(recorded["encode"]), ffmpeg=find_ffmpeg(ffmpeg))


def encode_to(source, folder, encoder, span=None):
    """Re-encode a video file (span: a part of it, as encode.ffmpeg_command takes) into
    folder/video.mp4; its path, or VideoError with the reason."""
    encoded = Path(folder) / "video.mp4"
    result = encode_video(Path(source).absolute(), encoded, encoder, span)
    if result.status == "failed":
        raise VideoError(result.reason)
    return encoded


def stored_counts(frames, gop, p_stride):
    """The P-frames `extract` stores for each GOP of a strict-GOP video of `frames` frames."""
    return [-(-(min(gop, frames - start) - 1) // p_stride) for start in range(0, frames, gop)]


def gop_plan(frames, recorded, choose=None, reads=None, first=0):
    """What to read of a strict-GOP video of `frames` frames (starting at frame `first` of
    its file): (runs [(first frame, count)] of the GOPs that choose keeps, each read up to
    `reads` frames from its start, None: whole; and the P-frames stored of each)."""
    gop, stride = recorded["encode"]["gop"], recorded["p_stride"]
    counts = stored_counts(frames, gop, stride)
    keep = choose(counts) if choose is not None else None
    runs = [(first + gop * g, min(gop, frames - gop * g, reads or gop))
            for g in sorted(range(len(counts)) if keep is None else keep)]
    return runs, [-(-(count - 1) // stride) for _, count in runs]


def extract_in_memory(encoded, recorded, choose=None, reads=None, sampled=None):
    """(in-memory h5py.File, index) of an encoded video: the index is the part of an
    index.json that readers use ({"settings", "by_id"}) for the one video, id "video".

    choose: a function of the stored P-frame counts of every GOP giving the GOPs to keep
    (None: all), known before decoding from the encoded file's frame count (exact: we wrote
    it, strict GOPs checked); reads: the frames read from the start of each (None: all, else
    the P-frames after them are not stored, and of those before them only the last is
    written: the one an evaluation clip reads, sampling.eval_frames_read; the chunks of the
    others stay unwritten, which readers refuse). Only those are decoded (by seeking), so
    time and memory grow with what a clip reads, not with the video. sampled (frames, stored
    P-frame counts, fps): encoded holds just what is read, back to back (sampled.py), of a
    video of that many frames and that frame rate."""
    # The stored values do not depend on compression (lossless): skip the filters' time.
    settings = ExtractSettings(storage=recorded["storage"], p_stride=recorded["p_stride"],
                               compression="none")
    if sampled is None:
        frames, fps = probe(encoded).frames, None
        runs, expected = gop_plan(frames, recorded, choose, reads)
    else:
        (frames, expected, fps), runs = sampled, None
    file = h5py.File(Path(encoded).with_name(MEMORY_SHARD), "w", driver="core",
                     backing_store=False)
    group = file.create_group("videos").create_group("00000")
    only = None if reads is None else [count - 1 for count in expected]
    try:
        extract_video(Video(Path(encoded), Path("video.mp4")), group, settings, runs, only)
        stored = [int(n) for n in group["num_p"][()]]
        if stored != expected:
            raise VideoError(f"internal error: {encoded} stored P-frames {stored}, its frame "
                             f"count promised {expected}")
    except BaseException:
        file.close()
        raise
    # the video's, not those of the frames decoded (readers check they agree with the index)
    group.attrs.update(frames=frames, **({"fps": fps} if fps else {}))
    attrs = dict(group.attrs, group="00000", num_p=group["num_p"][()])
    return file, {"settings": recorded,
                  "by_id": {"video": entry("video", attrs, MEMORY_SHARD, "", 0)}}


def encoded_as(path, recorded):
    """Whether a file is `teamnet encode` output with the encoding a dataset records: an
    .mp4 under a folder whose encode-settings.json names that encoding, whose own stream is
    so encoded (MPEG-4 Part 2 at the recorded size, the source stamp encode writes; its GOPs
    are checked as they are read). Such a file is scored as stored: encoding it again would
    change it (generation loss). Returns (whether, why not where the folder says so but the
    file does not)."""
    path = Path(path).absolute()
    if path.suffix.lower() != ".mp4":
        return False, ""
    def encoding(settings):  # the binary that encoded is not part of the encoding
        return {key: value for key, value in settings.items() if key != "ffmpeg"}
    for folder in path.parents:
        found = settings_of(folder)
        if found is not None:
            if encoding(found) != encoding(recorded["encode"]):
                return False, ""
            problem = _not_as_encoded(path, recorded["encode"])
            return not problem, problem and (f"under {folder}, whose encode-settings.json "
                                             f"matches, but {problem}: re-encoded")
    return False, ""


def _not_as_encoded(path, encoding):
    """What shows a file is not as `teamnet encode` wrote it with encoding, or ''."""
    try:
        info, stamp = probe(path), recorded_stamp(path)
    except VideoError as error:
        return str(error)
    settings = from_recorded(encoding)
    size = output_size(info.width, info.height, settings)
    if info.codec != "mpeg4":
        return f"its codec is {info.codec}"
    if (info.width, info.height) != tuple(size) or (
            not settings.short_side and tuple(size) != tuple(settings.size)):
        return f"it is {info.width}x{info.height}, not {size[0]}x{size[1]}"
    if stamp is None:
        return "it carries no source stamp of `teamnet encode`"
    return ""


def represent(source, recorded, encoder, choose=None, span=None, reads=None):
    """An in-memory (h5py file, index) of a video file, as extract_in_memory gives (choose,
    reads: as there), and index["decoded"]: how it was read. An output of `teamnet encode`
    with the recorded encoding (encoded_as) is read as it is, what is read alone; any other
    file is re-encoded in a temporary folder, removed afterwards: only what is read where its
    frames can be located by timestamp (sampled.py), else whole, saying why. span (start,
    seconds): that part of the file alone, frames round(start x rate) up to round((start +
    seconds) x rate), as a video of its own."""
    stored, not_stored = encoded_as(source, recorded) if span is None else (False, "")
    if stored:
        try:
            file, index = extract_in_memory(source, recorded, choose, reads)
            return file, {**index, "decoded": {"decoded": "stored GOPs"}}
        except VideoError as error:  # its GOPs are not where encode puts them
            not_stored = f"read as `teamnet encode` output, {error}: re-encoded"
    said = {"note": not_stored} if not_stored else {}
    with work_folder() as work:
        try:
            file, index = sampled_in_memory(source, recorded, encoder, choose, work, span, reads)
            return file, {**index, "decoded": {**index["decoded"], **said}}
        except SampledUnfit as error:
            why = str(error)
        file, index = extract_in_memory(encode_to(source, work, encoder, span), recorded,
                                        choose, reads)
        return file, {**index, "decoded": {"decoded": "whole", "why": why, **said}}


class SampledUnfit(VideoError):
    """A file whose sampled GOPs cannot be made exactly: it is encoded whole instead."""


def sampled_in_memory(source, recorded, encoder, choose, work, span=None, reads=None,
                      timings=None):
    """represent() of a file (or of its span) through what is read of its kept GOPs alone
    (sampled.py), or SampledUnfit. timings: a dict to add each stage's seconds to."""
    clock = _Stages(timings)
    index = stream_index(source)
    clock("demux")
    if index.untrusted:
        raise SampledUnfit(index.untrusted)
    first, frames = span_frames(index, span)
    runs, expected = gop_plan(frames, recorded, choose, reads, first)
    info = probe(source)
    # not encode_to's name: the whole video's encoding, where this fails, must not find this
    # file there and take it for itself (encode_video skips a target already made)
    encoded = Path(work) / "sampled.mp4"
    run_gop = run_encoding(encoder, reads)
    size = output_size(info.width, info.height, encoder)
    parts = batches(seek_groups(index, runs), info.width * info.height * 3 // 2)
    clock("probe")
    names = [encoded] if len(parts) == 1 else [Path(work) / f"part-{k}.mp4"
                                               for k in range(len(parts))]
    for number, (groups, name) in enumerate(zip(parts, names)):
        _encode_groups(source, index, groups, Path(work) / f"cuts-{number}", name, size,
                       run_gop, info.stream, clock)
    if len(parts) > 1:  # high resolutions: several ffmpeg, each holding fewer inputs
        listing = Path(work) / "parts.txt"
        listing.write_text("".join(f"file '{name.name}'\n" for name in names))
        _ffmpeg(join_command(listing, encoded, encoder))
        clock("decode + re-encode")
    try:  # the extraction checks every GOP's frames against the plan: none lost or added
        file, memory = extract_in_memory(encoded, recorded, reads=reads,
                                         sampled=(frames, expected, float(index.rate)))
    except VideoError as error:  # frames that fail to decode, say: the whole video instead
        raise SampledUnfit(str(error)) from None
    clock("extract")
    return file, {**memory, "decoded": {"decoded": "sampled GOPs"}}


def run_encoding(encoder, reads):
    """The encoding of sampled runs read up to `reads` frames (None: whole GOPs): every run
    but the video's last GOP has the same length, an encoder GOP each."""
    return replace(encoder, gop=min(encoder.gop, reads or encoder.gop))


def _encode_groups(source, index, groups, cuts, target, size, settings, stream, clock):
    """Encode groups of runs (sampled.seek_groups) of source into target by one ffmpeg that
    reads their packets cut out into folder `cuts` (removed afterwards), or, where they
    cannot be cut or that ffmpeg fails, by one that seeks in the source."""
    cuts.mkdir()
    try:
        inputs = cut_inputs(source, index, groups, cuts)
        clock("cut")
        _ffmpeg(encode_runs(inputs, target, groups, size, settings))
        clock("decode + re-encode")
        return
    except (CutUnfit, SampledUnfit):
        clock("cut, given up")
    finally:
        shutil.rmtree(cuts, ignore_errors=True)
    _ffmpeg(encode_runs(seek_inputs(source, index, groups, stream), target, groups, size,
                        settings))
    clock("seek + decode + re-encode")


def _ffmpeg(command):
    done = subprocess.run(command, capture_output=True, text=True, errors="replace")
    if done.returncode != 0:  # its first error says why, without ffmpeg's [component] tags
        lines = [re.sub(r"^(\[[^]]*\]\s*)+", "", line) for line in done.stderr.splitlines()]
        said = [line for line in lines if "error" in line.lower()] or lines[-1:]
        raise SampledUnfit("ffmpeg failed on its sampled GOPs: "
                           + (said[0] if said else f"exit {done.returncode}"))


class _Stages:
    """Adds the seconds since the last call to timings[stage] (nothing without timings)."""

    def __init__(self, timings):
        self.timings, self.last = timings, time.perf_counter()

    def __call__(self, stage):
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
            self.last = now


@contextmanager
def work_folder():
    """A new private temporary folder, held for as long as it is used: its owner keeps an
    flock on the folder itself, and a run removes only the folders that carry WORK_MARK,
    whose lock it can take (those of killed runs) and that are older than GRACE_S. A pid
    proves nothing in a shared /tmp (another container's process has a pid that does not
    exist here); a held flock does, across PID namespaces. GRACE_S covers the instant
    between a folder's creation and its owner's lock."""
    remove_abandoned(tempfile.gettempdir())
    work = tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{owner_tag()}-")
    descriptor = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a file system without locks: others will not take it either
            pass
        (Path(work) / WORK_MARK).touch()  # what makes it ours to remove once unheld
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)  # still held: nobody else removes it
        os.close(descriptor)


def remove_abandoned(folder, grace_s=GRACE_S):
    """Remove the work folders in folder that no live run holds (work_folder)."""
    for left in Path(folder).glob(f"{WORK_PREFIX}*"):
        try:  # another program's folder of a similar name has no mark: never touched
            if (time.time() - left.lstat().st_mtime < grace_s or not left.is_dir()
                    or left.is_symlink() or not (left / WORK_MARK).is_file()):
                continue
            descriptor = os.open(left, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:  # gone meanwhile, or not ours to open
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a live run (or unlockable here): proves nothing dead
            os.close(descriptor)
            continue
        try:
            shutil.rmtree(left, ignore_errors=True)
        finally:
            os.close(descriptor)


def span_frames(index, span):
    """(first frame, frames) of a span (start, seconds) of a video (None: all of it)."""
    if span is None:
        return 0, index.frames
    start, seconds = span
    first = min(index.frames, round(start * index.rate))
    end = min(index.frames, round((start + seconds) * index.rate))
    if end <= first:
        raise SampledUnfit(f"no frame between {start} s and {start + seconds} s")
    return first, end - first


def windows(source, seconds):
    """(spans, duration): the spans (start, seconds) of consecutive windows of `seconds`
    covering a video file, the last one running to the end (longer, never a sliver), and
    the file's duration in seconds: that of the frames its stream holds (counted by
    demuxing), never what its container declares."""
    index = stream_index(source)
    rate = index.rate or Fraction(probe(source).fps or 0)
    if not rate or not index.frames:
        raise VideoError("its duration is unknown (no frame rate or no frames), and --window "
                         "needs it; re-mux it (ffmpeg -i IN -c copy OUT.mkv)")
    duration = float(index.frames / rate)
    # never more windows than frames: a file may declare (or time) far more than it holds
    count = max(1, min(index.frames, int(duration // seconds)))
    # the last window asks for a second more than is left: ffmpeg stops at the end
    return [(k * seconds, seconds if k < count - 1 else duration - k * seconds + 1.0)
            for k in range(count)], duration
