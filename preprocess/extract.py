"""Extraction: encoded videos -> per GOP, the I-frame and every P-frame's accumulated motion
vectors and residuals (docs/REPRESENTATION.md sections 2-4) -> sharded HDF5 (docs/FORMAT.md).

Each joblib task writes one whole shard under a temporary name; a rerun skips every video that
a complete shard already holds, so killing a run loses at most the shards in flight.
"""
import errno
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from . import store
from .atomic import NO_SPACE, atomic_output, is_disk_full, remove_partials, write_report
from .decode import ENCODE_HINT, RGBConverter, VideoError, decode_with_motion, probe
from .discover import file_size, find_videos, report_name, select_part, selected
from .encode import settings_of as encode_settings_of
from .encode import source_stamp
from .lock import folder_lock
from .motion import GopAccumulator
from .parallel import run_parallel
from .settings import ExtractSettings, ParallelSettings
from .store.layout import ONE_A_GOP

REPORT_NAME = "extract-report.json"
HEADROOM = 16 * 2**20  # bytes kept free beyond a video's largest size (HDF5 caches, metadata)


@dataclass
class ShardResult:
    shard: str
    stored: list = field(default_factory=list)  # video ids
    failures: list = field(default_factory=list)  # (source path, reason)


class _GopBuffer:
    """One GOP's P-frame outputs, reused from GOP to GOP (grown when a GOP is longer)."""

    def __init__(self, height, width, dtype):
        self.shape = (height, width)
        self.mvs = np.empty((0, height, width, 2), dtype)
        self.residuals = np.empty((0, height, width, 3), dtype)
        self.count = 0

    def next_slots(self):
        if self.count == len(self.mvs):
            grown = max(16, 2 * len(self.mvs))
            self.mvs = np.resize(self.mvs, (grown, *self.shape, 2))
            self.residuals = np.resize(self.residuals, (grown, *self.shape, 3))
        self.count += 1
        return self.mvs[self.count - 1], self.residuals[self.count - 1]


def _check_gop_length(p_counts, count):
    """A strict GOP: every GOP has GOP 0's P-frame count, except the last, which may have fewer."""
    if not p_counts:
        return
    if p_counts[-1] < p_counts[0]:  # a short GOP that turns out not to be the last
        bad, bad_count = len(p_counts) - 1, p_counts[-1]
    elif count > p_counts[0]:
        bad, bad_count = len(p_counts), count
    else:
        return
    raise VideoError(f"irregular GOPs: GOP {bad} has {bad_count} P-frames, GOP 0 has "
                     f"{p_counts[0]}, and only the last GOP may have fewer (an I-frame at a "
                     f"scene cut?); {ENCODE_HINT}")


class NoRoom(OSError):
    """Too little free space to write a video (checked before HDF5 writes anything)."""


def check_room(frames, width, height, settings, folder, what="this video"):
    """Refuse to write `frames` frames that might not fit on the disk. HDF5 must never meet
    a full disk itself: after a failed write the library is left in a state that crashes
    the process when it exits. The bound is every frame stored whole, uncompressed."""
    itemsize = np.dtype(settings.storage).itemsize
    needed = frames * width * height * (3 + 5 * itemsize) + HEADROOM
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise NoRoom(errno.ENOSPC, f"{NO_SPACE} ({what} needs up to {needed / 2**20:,.0f} "
                     f"MB, {free / 2**20:,.0f} MB are free)")


class _GopWriter:
    """A video's GOPs as they are decoded, into its HDF5 group: the I-frame in RGB and, for
    every p_stride-th P-frame, its MVs accumulated back to the I-frame and its residual.
    folder: where the shard is written (its free space checked before each GOP), or None
    for a file held in memory. only: for each GOP, the one stored P-frame slot whose values
    are computed and written (those a clip reads), the others counted but left unwritten;
    None: every one."""

    def __init__(self, group, settings, folder, only=None):
        self.group, self.settings, self.folder, self.only = group, settings, folder, only
        self.dtype = np.dtype(settings.storage)
        self.rgb = RGBConverter()  # one per video: its frames share size and format
        self.writer = self.buffer = self.iframe = self.accumulator = None
        self.position = self.stored = 0  # P-frames so far in this GOP, and stored ones
        self.p_counts = []  # true P-frames per GOP (the stored ones are every p_stride-th)
        self.with_motion = 0  # P-frames that carried motion vectors

    def i_frame(self, frame):
        if self.iframe is not None:
            self._finish_gop()
        self.iframe, self.position, self.stored = self.rgb(frame), 0, 0
        self.accumulator = GopAccumulator(self.iframe)
        self.buffer = self.buffer or _GopBuffer(*self.iframe.shape[:2], self.dtype)
        self.buffer.count = 0

    def p_frame(self, frame, records):
        self.position += 1
        self.with_motion += records is not None
        self.accumulator.warp(records)
        if (self.position - 1) % self.settings.p_stride == 0:
            self.stored += 1
            if self._written(self.stored - 1):
                self.accumulator.outputs(self.rgb(frame), *self.buffer.next_slots())

    def _written(self, slot):
        gop = len(self.p_counts)
        return self.only is None or (gop < len(self.only) and slot == self.only[gop])

    def _finish_gop(self):
        gop = len(self.p_counts)
        _check_gop_length(self.p_counts, self.position)
        self.p_counts.append(self.position)
        height, width = self.iframe.shape[:2]
        if self.folder is not None:
            check_room(1 + self.position, width, height, self.settings, self.folder,
                       f"GOP {gop}")
        if self.writer is None:  # GOP 0 sets the P-frame count that every other GOP must have
            self.writer = store.VideoWriter(self.group, height, width, self.stored,
                                            self.dtype, self.settings.compression)
        count = self.buffer.count
        first = self.only[gop] if count and self.only is not None else 0
        self.writer.add_gop(self.iframe, self.buffer.mvs[:count], self.buffer.residuals[:count],
                            self.stored, first)

    def finish(self, **attributes):
        """The last GOP written, and the video's attributes."""
        self._finish_gop()
        if sum(self.p_counts) and not self.with_motion:
            raise VideoError("no P-frame carries motion vectors (decoder without export_mvs?)")
        said = {} if self.only is None else {"p_written": ONE_A_GOP}  # for layout.check_video
        self.writer.finish(width=self.iframe.shape[1], height=self.iframe.shape[0],
                           **attributes, **said)


def extract_video(video, group, settings, runs=None, only=None):
    """Decode one video and write its GOPs and attributes into an HDF5 group. runs: [(first
    frame, count)] of GOPs, the only frames decoded (by seeking: memory and time then grow
    with them, not with the video); default: every frame. only: for each GOP, the one
    stored P-frame slot written (_GopWriter); default: every one."""
    try:
        video.relative.as_posix().encode("utf-8")
    except UnicodeEncodeError:  # ids are text: in HDF5 attributes, index.json, lists
        raise VideoError("its path is not valid UTF-8, and a video's id is its path: rename "
                         "it (convmv -f latin1 -t utf8 -r renames a whole tree)") from None
    info = probe(video.path)
    # a file held in memory takes no disk space; on disk the whole video is checked first
    # where the container declares its length, and each GOP before it is written, since a
    # raw stream (.m4v) declares none
    folder = None if group.file.driver == "core" else Path(group.file.filename).parent
    if folder is not None:
        check_room(info.frames, info.width, info.height, settings, folder)
    gops = _GopWriter(group, settings, folder, only)
    frames, size = 0, None  # size: (width, height) of frame 0, which every frame must have
    for is_iframe, frame, records in decode_with_motion(video.path, runs):
        size = size or (frame.width, frame.height)
        if (frame.width, frame.height) != size:  # streams joined end to end (cat a.m4v b.m4v)
            raise VideoError(f"the frame size changes at frame {frames}, from "
                             f"{size[0]}x{size[1]} to {frame.width}x{frame.height}; "
                             f"{ENCODE_HINT} (it scales every frame to one size)")
        frames += 1
        if is_iframe:
            gops.i_frame(frame)
        else:
            gops.p_frame(frame, records)
    gops.finish(video_id=video.video_id, source=video.relative.as_posix(),
                source_stamp=source_stamp(video.path), folder_class=video.folder_class,
                fps=info.fps, frames=frames)


def shard_settings(settings, source_root):
    """What every shard records: the extraction settings, and the encoding of the videos
    (SRC/encode-settings.json; None where SRC was not made by `teamnet encode`), which
    `teamnet predict` repeats on new videos. A rerun must find the same."""
    return {**settings.recorded(), "encode": encode_settings_of(source_root)}


def _fill_shard(shard, videos, settings, recorded, result):
    shard.attrs["settings"] = json.dumps(recorded)
    stored = shard.create_group("videos")
    for position, video in enumerate(videos):
        name = f"{len(result.stored):05d}"
        try:
            extract_video(video, stored.create_group(name), settings)
        except NoRoom as error:  # this video and the rest: what is written stays
            del stored[name]
            result.failures += [(str(v.path), error.strerror) for v in videos[position:]]
            return
        except Exception as error:  # a bad video (or a bug) must not cost the others
            if is_disk_full(error):
                raise  # HDF5 met a full disk (another writer took the space): the shard is lost
            del stored[name]
            result.failures.append((str(video.path), failure_reason(error, video.path)))
        else:
            result.stored.append(video.video_id)


def failure_reason(error, path):
    """What a failure says: a VideoError's message; for a file that cannot be read or
    written, which one and what to do; anything else is a bug (its kind named)."""
    if isinstance(error, VideoError):
        return str(error)
    if isinstance(error, OSError):
        where = error.filename or path
        return (f"cannot read or write {where}: {error.strerror or error}; check that it "
                "is readable and its output folder writable")
    return f"internal error: {error!r}"


def extract_shard(task):
    """Write a list of videos into one shard file, atomically; a shard that would hold no video
    is not written. Failures are reported in the result, never raised."""
    shard_path, videos, settings, recorded = task
    result = ShardResult(Path(shard_path).name)
    try:
        with atomic_output(shard_path) as temporary:
            with h5py.File(temporary, "w") as shard:
                _fill_shard(shard, videos, settings, recorded, result)
            if not result.stored:
                temporary.unlink()
    except Exception as error:  # the shard could not be completed: none of it is kept
        reason = NO_SPACE if is_disk_full(error) else failure_reason(error, shard_path)
        failed = {path for path, _ in result.failures}
        result.failures += [(str(v.path), reason) for v in videos if str(v.path) not in failed]
        result.stored = []
    if not result.stored:
        result.shard = None
    return result


def extract_dataset(source_root, target_root, settings=ExtractSettings(),
                    parallel=ParallelSettings(), labels_file=None, select=None, counts=None):
    """Extract every video under source_root into shards under target_root, resuming.

    Returns (index, failures, notes): failures lists (path, reason) of the videos not stored
    (also in target_root/extract-report.json), notes (path, message) what the user should
    know (unreadable shards set aside, a report or index that could not be written).
    index.json is rebuilt from all complete shards, except for a `parallel.part` (i, n) of
    the videos: then index is None and `teamnet index` (store.build_index) merges the parts
    once all have run. The folder is locked for the run (preprocess/lock.py). counts, a dict
    where given, gets the report's counts (videos, already_done, extracted, failed).
    """
    target_root = Path(target_root).absolute()
    found = find_videos(source_root)
    videos = select_part(selected(found, select), parallel.part)
    unlabelled = []
    if labels_file:  # read before any work, rather than after hours of it
        labelled = store.labels_for([video.video_id for video in videos], labels_file, False)
        unlabelled = [video for video in videos if video.video_id not in labelled]
        videos = [video for video in videos if video.video_id in labelled]
    if parallel.part is None:
        store.check_labels_kept(target_root, labels_file)
    with folder_lock(target_root, parallel.part):
        recorded = shard_settings(settings, source_root)
        index, failures, notes = _extract_locked(videos, target_root, settings, recorded,
                                                 parallel, labels_file,
                                                 {video.video_id for video in found},
                                                 {} if counts is None else counts)
    if unlabelled:  # a test set, say: not an error that blocks the labelled videos
        notes.insert(0, (str(source_root), f"{len(unlabelled)} video(s) that no labels file "
                         f"names were left out, such as {unlabelled[0].video_id!r}"))
    return index, failures, notes


def _set_aside_replaced(shards, videos):
    """Rename the shards holding a video whose file was replaced since it was extracted
    (another size or modification time than the shard records) to NAME.replaced, so that
    their videos are extracted again; returns (the other shards, notes naming those)."""
    current = {video.video_id: video.path for video in videos}
    kept, notes = [], []
    for shard, stored in shards:
        replaced = [video_id for video_id, attrs in stored.items()
                    if video_id in current and attrs["source_stamp"] is not None
                    and attrs["source_stamp"] != _stamp_or_none(current[video_id])]
        if replaced:
            aside = store.set_aside(shard, "replaced")
            notes.append((str(shard), f"{replaced[0]!r} was replaced since it was extracted: "
                          f"set aside as {aside.name}; its {len(stored)} video(s) "
                          "are extracted again"))
        else:
            kept.append((shard, stored))
    return kept, notes


def _stamp_or_none(path):
    try:
        return source_stamp(path)
    except OSError:
        return None


def _extract_locked(videos, target_root, settings, recorded, parallel, labels_file, present,
                    counts):
    part = parallel.part
    # left by a killed run: never complete, never visible as a shard; a part removes its own
    # shards' and report's, a whole run everything's (index.json's too)
    remove_partials(target_root, "*" if part is None else store.shard_prefix(part) + "*")
    remove_partials(target_root, report_name(REPORT_NAME, part) + "*")
    notes = [(str(path), f"unreadable ({reason}): set aside as {aside.name}; its videos "
              "are extracted again")
             for path, reason, aside in store.set_aside_broken(target_root)]
    _, shards = store.complete_shards(target_root, recorded)
    shards, replaced = _set_aside_replaced(shards, videos)
    notes += replaced
    done = {video_id: shard.name for shard, stored in shards for video_id in stored}
    if part is None:  # a part sees only its own videos
        gone = sorted(set(done) - present)
        if gone:
            notes.append((str(target_root), f"{len(gone)} stored video(s) are no longer in "
                          f"the source folder, such as {gone[0]!r}: kept (index.json lists "
                          "them); extract into a new folder to leave them out"))
    todo = [video for video in videos if video.video_id not in done]
    first = store.next_shard_number({p.name for p in target_root.glob(store.SHARD_GLOB)}, part)
    size = settings.shard_size
    tasks = [(target_root / store.shard_name(first + n, part), todo[start:start + size],
              settings, recorded) for n, start in enumerate(range(0, len(todo), size))]
    failures = []
    for result in run_parallel(extract_shard, tasks, parallel, "extract", total=len(todo),
                               unit="video", weight=lambda r: len(r.stored) + len(r.failures),
                               size=lambda task: sum(file_size(v.path) for v in task[1])):
        failures.extend(result.failures)
    failures.sort()
    report = target_root / report_name(REPORT_NAME, part)
    counts.update(videos=len(videos), already_done=len(videos) - len(todo),
                  extracted=len(todo) - len(failures), failed=len(failures))
    problem = write_report(report, {
        **counts, "settings": recorded,
        "failures": [{"path": path, "reason": reason} for path, reason in failures]})
    notes += [(str(report), problem)] if problem else []
    index = None
    if part is None:
        try:
            index = store.build_index(target_root, labels_file)
        except OSError as error:  # the shards are safe; only the index is missing
            reason = NO_SPACE if is_disk_full(error) else str(error)
            notes.append((str(target_root / store.INDEX_NAME), f"could not be written ({reason}); "
                          f"once there is room: teamnet index {target_root}"))
    return index, failures, notes
