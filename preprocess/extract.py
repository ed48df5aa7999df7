"""Extraction: encoded videos -> per GOP, the I-frame and every P-frame's accumulated motion
vectors and residuals (representation.md sections 2-4) -> sharded HDF5 (docs/FORMAT.md).

Each joblib task writes one whole shard under a temporary name; a rerun skips every video that
a complete shard already holds, so killing a run loses at most the shards in flight.
"""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from . import store
from .atomic import atomic_output, write_json
from .decode import ENCODE_HINT, VideoError, decode_with_motion, probe, rgb
from .discover import PARTIAL_SUFFIX, DatasetError, find_videos, report_name, select_part
from .motion import GopAccumulator
from .parallel import run_parallel

REPORT_NAME = "extract-report.json"


@dataclass(frozen=True)
class ExtractSettings:
    storage: str = "int8"  # MVs and residuals: "int8" (saturated, see FORMAT.md) or "int16"
    compression: str = "balanced"  # see store.COMPRESSIONS
    p_stride: int = 1  # keep P-frames 1, 1 + S, 1 + 2S, ... of each GOP (1: all)

    def as_dict(self):
        return {"format_version": store.FORMAT_VERSION, **asdict(self)}


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
            shard.attrs["settings"] = json.dumps(settings.as_dict())
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


def _existing_shards(root, settings):
    """{video_id: shard} of complete shards; refuses shards written with other settings."""
    done = {}
    for shard in sorted(root.glob(store.SHARD_GLOB)):
        theirs, stored = store.read_shard(shard)
        if theirs != settings.as_dict():
            raise DatasetError(f"{shard} was extracted with settings {theirs}, this run asks for "
                               f"{settings.as_dict()}; use the same options or another folder")
        done.update(dict.fromkeys(stored, shard.name))
    return done


def _check_labels(videos, labels_file):
    labels = store.read_labels(labels_file)
    missing = [v.video_id for v in videos if v.video_id not in labels]
    if missing:
        raise DatasetError(f"{labels_file}: no class for {len(missing)} video(s), such as "
                           f"{missing[0]!r}")


def extract_dataset(source_root, target_root, settings=ExtractSettings(), workers=1,
                    shard_size=64, labels_file=None, backend="joblib", scheduler=None, part=None):
    """Extract every video under source_root into shards under target_root, resuming.

    Returns (index, failures) where failures lists (path, reason); failures are also written to
    target_root/extract-report.json. index.json is rebuilt from all complete shards, except
    for a `part` (i, n) of the videos: then index is None and `teamnet index` (build_index)
    merges the parts once all have run. backend/scheduler: see parallel.run_parallel.
    """
    target_root = Path(target_root).absolute()
    videos = select_part(find_videos(source_root), part)
    if labels_file:
        _check_labels(videos, labels_file)
    target_root.mkdir(parents=True, exist_ok=True)
    for stale in target_root.glob(f".*{PARTIAL_SUFFIX}"):
        stale.unlink()  # left by a killed run: never complete, never visible as a shard
    done = _existing_shards(target_root, settings)
    todo = [video for video in videos if video.video_id not in done]
    first = store.next_shard_number(set(done.values()), part)
    tasks = [(target_root / store.shard_name(first + n, part), todo[start:start + shard_size],
              settings) for n, start in enumerate(range(0, len(todo), shard_size))]
    failures = []
    for result in run_parallel(extract_shard, tasks, workers, "extract", total=len(todo),
                               unit="video", weight=lambda r: len(r.stored) + len(r.failures),
                               backend=backend, scheduler=scheduler):
        failures.extend(result.failures)
    failures.sort()
    write_json(target_root / report_name(REPORT_NAME, part), {
        "videos": len(videos), "already_done": len(done), "extracted": len(todo) - len(failures),
        "failed": len(failures), "settings": settings.as_dict(),
        "failures": [{"path": path, "reason": reason} for path, reason in failures]})
    index = None if part else store.build_index(target_root, labels_file)
    return index, failures
