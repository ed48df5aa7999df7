"""Extraction: encoded videos -> per GOP, the I-frame and every P-frame's accumulated motion
vectors and residuals (docs/REPRESENTATION.md sections 2-4) -> sharded HDF5 (docs/FORMAT.md).

Each joblib task writes one whole shard under a temporary name; a rerun skips every video that
a complete shard already holds, so killing a run loses at most the shards in flight.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from . import store
from .atomic import atomic_output, write_json
from .decode import ENCODE_HINT, VideoError, decode_with_motion, probe, rgb
from .discover import PARTIAL_SUFFIX, find_videos, report_name, select_part
from .motion import GopAccumulator
from .parallel import run_parallel
from .settings import ExtractSettings, ParallelSettings

REPORT_NAME = "extract-report.json"


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


def extract_video(video, group, settings):
    """Decode one video and write its GOPs and attributes into an HDF5 group."""
    info = probe(video.path)
    dtype = np.dtype(settings.storage)
    writer = buffer = iframe = accumulator = None
    frames = p_frames_with_motion = position = 0  # position: P-frames so far in this GOP
    p_counts = []  # true P-frames per GOP (the stored ones are every p_stride-th)

    def finish_gop(count):
        nonlocal writer
        _check_gop_length(p_counts, count)
        p_counts.append(count)
        if writer is None:  # GOP 0 sets the P-frame count that every other GOP must have
            writer = store.VideoWriter(group, *iframe.shape[:2], buffer.count, dtype,
                                       settings.compression)
        writer.add_gop(iframe, buffer.mvs[:buffer.count], buffer.residuals[:buffer.count])

    for is_iframe, frame, records in decode_with_motion(video.path):
        frames += 1
        if is_iframe:
            if iframe is not None:
                finish_gop(position)
            iframe = rgb(frame)
            accumulator, position = GopAccumulator(iframe), 0
            buffer = buffer or _GopBuffer(*iframe.shape[:2], dtype)
            buffer.count = 0
        else:
            position += 1
            p_frames_with_motion += records is not None
            accumulator.warp(records)
            if (position - 1) % settings.p_stride == 0:
                accumulator.outputs(rgb(frame), *buffer.next_slots())
    finish_gop(position)
    if sum(p_counts) and not p_frames_with_motion:
        raise VideoError("no P-frame carries motion vectors (decoder without export_mvs?)")
    writer.finish(video_id=video.video_id, source=video.relative.as_posix(),
                  folder_class=video.folder_class, fps=info.fps, width=iframe.shape[1],
                  height=iframe.shape[0], frames=frames)


def extract_shard(task):
    """Write a list of videos into one shard file, atomically; a shard that would hold no video
    is not written. Failures are reported in the result, never raised."""
    shard_path, videos, settings = task
    result = ShardResult(Path(shard_path).name)
    with atomic_output(shard_path) as temporary:
        with h5py.File(temporary, "w") as shard:
            shard.attrs["settings"] = json.dumps(settings.recorded())
            stored = shard.create_group("videos")
            for video in videos:
                name = f"{len(result.stored):05d}"
                try:
                    extract_video(video, stored.create_group(name), settings)
                    result.stored.append(video.video_id)
                except Exception as error:  # a bad video (or a bug) must not cost the others
                    del stored[name]
                    reason = str(error) if isinstance(error, VideoError) else f"internal error: {error!r}"
                    result.failures.append((str(video.path), reason))
        if not result.stored:
            temporary.unlink()
            result.shard = None
    return result


def extract_dataset(source_root, target_root, settings=ExtractSettings(),
                    parallel=ParallelSettings(), labels_file=None):
    """Extract every video under source_root into shards under target_root, resuming.

    Returns (index, failures) where failures lists (path, reason); failures are also written to
    target_root/extract-report.json. index.json is rebuilt from all complete shards, except
    for a `parallel.part` (i, n) of the videos: then index is None and `teamnet index`
    (store.build_index) merges the parts once all have run.
    """
    target_root = Path(target_root).absolute()
    videos = select_part(find_videos(source_root), parallel.part)
    if labels_file:  # refused before any work, rather than after hours of it
        store.labels_for([video.video_id for video in videos], labels_file)
    target_root.mkdir(parents=True, exist_ok=True)
    for stale in target_root.glob(f".*{PARTIAL_SUFFIX}"):
        stale.unlink()  # left by a killed run: never complete, never visible as a shard
    _, shards = store.complete_shards(target_root, settings.recorded())
    done = {video_id: shard.name for shard, stored in shards for video_id in stored}
    todo = [video for video in videos if video.video_id not in done]
    first = store.next_shard_number(set(done.values()), parallel.part)
    size = settings.shard_size
    tasks = [(target_root / store.shard_name(first + n, parallel.part), todo[start:start + size],
              settings) for n, start in enumerate(range(0, len(todo), size))]
    failures = []
    for result in run_parallel(extract_shard, tasks, parallel, "extract", total=len(todo),
                               unit="video", weight=lambda r: len(r.stored) + len(r.failures)):
        failures.extend(result.failures)
    failures.sort()
    write_json(target_root / report_name(REPORT_NAME, parallel.part), {
        "videos": len(videos), "already_done": len(done), "extracted": len(todo) - len(failures),
        "failed": len(failures), "settings": settings.recorded(),
        "failures": [{"path": path, "reason": reason} for path, reason in failures]})
    index = None if parallel.part else store.build_index(target_root, labels_file)
    return index, failures
