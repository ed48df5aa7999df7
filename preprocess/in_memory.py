"""One video from any file ffmpeg reads to the stored representation, without a dataset.

The video is re-encoded in a temporary folder with the encoding a dataset records (its
settings' "encode"), then extracted into an HDF5 file held in memory (h5py's core driver, no
backing store): no shard is written. Values are those `extract` would have stored, so a model
sees a new video exactly as it saw its dataset's videos (`teamnet predict`).
"""
import fcntl
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import h5py

from .atomic import owner_tag
from .decode import VideoError, probe
from .discover import DatasetError, Video
from .encode import encode_video, find_ffmpeg, from_recorded, settings_of
from .extract import extract_video
from .settings import ExtractSettings
from .store.index import entry

MEMORY_SHARD = "in-memory"  # the shard name the index of an in-memory video gives
WORK_PREFIX = "teamnet-predict-"  # + HOST-PID- + random: a predict run's temporary folder
GRACE_S = 60.0  # a work folder younger than this is never removed (work_folder)


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


def extract_in_memory(encoded, recorded, choose=None):
    """(in-memory h5py.File, index) of an encoded video: the index is the part of an
    index.json that readers use ({"settings", "by_id"}) for the one video, id "video".

    choose: a function of the stored P-frame counts of every GOP giving the GOPs to keep
    (None: all), known before decoding from the encoded file's frame count (exact: we wrote
    it, strict GOPs checked): memory then grows with the GOPs kept, not with the video."""
    # The stored values do not depend on compression (lossless): skip the filters' time.
    settings = ExtractSettings(storage=recorded["storage"], p_stride=recorded["p_stride"],
                               compression="none")
    counts = stored_counts(probe(encoded).frames, recorded["encode"]["gop"], settings.p_stride)
    keep = None if choose is None else choose(counts)
    file = h5py.File(Path(encoded).with_name(MEMORY_SHARD), "w", driver="core",
                     backing_store=False)
    group = file.create_group("videos").create_group("00000")
    try:
        extract_video(Video(Path(encoded), Path("video.mp4")), group, settings, keep)
        stored = [int(n) for n in group["num_p"][()]]
        if stored != [counts[g] for g in sorted(keep or range(len(counts)))]:
            raise VideoError(f"internal error: {encoded} stored P-frames {stored}, its frame "
                             f"count promised {counts}")
    except BaseException:
        file.close()
        raise
    attrs = dict(group.attrs, group="00000", num_p=group["num_p"][()])
    return file, {"settings": recorded,
                  "by_id": {"video": entry("video", attrs, MEMORY_SHARD, "", 0)}}


def encoded_as(path, recorded):
    """Whether a file is `teamnet encode` output with the encoding a dataset records: an .mp4
    under a folder whose encode-settings.json names that encoding. Such a file is scored as
    stored: encoding it again would change it (generation loss)."""
    path = Path(path).absolute()
    if path.suffix.lower() != ".mp4":
        return False
    def encoding(settings):  # the binary that encoded is not part of the encoding
        return {key: value for key, value in settings.items() if key != "ffmpeg"}
    for folder in path.parents:
        found = settings_of(folder)
        if found is not None:
            return encoding(found) == encoding(recorded["encode"])
    return False


def represent(source, recorded, encoder, choose=None, span=None):
    """An in-memory (h5py file, index) of a video file, as extract_in_memory gives (choose:
    as there): re-encoded first in a temporary folder, removed afterwards, unless it already
    is an output of `teamnet encode` with the recorded encoding (encoded_as). span (start,
    seconds or None): that part of the file alone, always re-encoded."""
    if span is None and encoded_as(source, recorded):
        return extract_in_memory(source, recorded, choose)
    with work_folder() as work:
        return extract_in_memory(encode_to(source, work, encoder, span), recorded, choose)


@contextmanager
def work_folder():
    """A new private temporary folder, held for as long as it is used: its owner keeps an
    flock on the folder itself, and a run removes only the folders whose lock it can take
    (those of killed runs) and that are older than GRACE_S. A pid proves nothing in a shared
    /tmp (another container's process has a pid that does not exist here); a held flock
    does, across PID namespaces. GRACE_S covers the instant between a folder's creation and
    its owner's lock."""
    remove_abandoned(tempfile.gettempdir())
    work = tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{owner_tag()}-")
    descriptor = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a file system without locks: others will not take it either
            pass
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)  # still held: nobody else removes it
        os.close(descriptor)


def remove_abandoned(folder, grace_s=GRACE_S):
    """Remove the work folders in folder that no live run holds (work_folder)."""
    for left in Path(folder).glob(f"{WORK_PREFIX}*"):
        try:
            if time.time() - left.lstat().st_mtime < grace_s or not left.is_dir():
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


def windows(source, seconds):
    """(spans, duration): the spans (start, seconds) of consecutive windows of `seconds`
    covering a video file, the last one running to the end (longer, never a sliver), and
    the file's duration in seconds."""
    info = probe(source)
    if not info.fps or not info.frames:
        raise VideoError("its duration is unknown (no frame rate or frame count in the "
                         "container), and --window needs it; re-mux it (ffmpeg -i IN -c copy "
                         "OUT.mkv)")
    duration = info.frames / info.fps
    count = max(1, int(duration // seconds))
    # the last window asks for a second more than is left: ffmpeg stops at the end
    return [(k * seconds, seconds if k < count - 1 else duration - k * seconds + 1.0)
            for k in range(count)], duration
