"""The sharded HDF5 store of the partially decoded representation (layout: docs/FORMAT.md).

Needs only h5py and NumPy (no decoder, no torch): the training package reads through here.
Shards appear whole (written under a temporary name, then renamed); index.json is rebuilt from
the complete shards at the end of every extraction run, so it never names a missing video.
"""
import csv
import json
import re
from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np

from .atomic import write_json
from .discover import strip_video_extension

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
SHARD_GLOB = "shard-*.h5"
_LZF, _GZIP = {"compression": "lzf"}, {"compression": "gzip", "compression_opts": 1}
# HDF5 filters per stream, all built into h5py (the GPU image has no hdf5plugin). Measured
# (BENCHMARKS.md): lzf shrinks MVs ~14x for ~0.17 ms a frame, but residuals, close to noise,
# only ~1.4x for ~1 ms a frame (more than decoding), so "balanced" leaves residuals raw.
COMPRESSIONS = {
    "balanced": {"iframes": _LZF, "mvs": _LZF, "residuals": {}},
    "lzf": {"iframes": _LZF, "mvs": _LZF, "residuals": _LZF},
    "gzip": {"iframes": _GZIP, "mvs": _GZIP, "residuals": _GZIP},
    "none": {"iframes": {}, "mvs": {}, "residuals": {}},
}


class StoreError(Exception):
    """A dataset folder that cannot be read as asked; the message says why."""


_SHARD_NAME = re.compile(r"shard-(?:(\d{3})of(\d{3})-)?(\d{5})\.h5")


def shard_name(number, part=None):
    """shard-00042.h5, or shard-002of008-00042.h5 for part 2 of 8 (parts never collide)."""
    prefix = "" if part is None else f"{part[0]:03d}of{part[1]:03d}-"
    return f"shard-{prefix}{number:05d}.h5"


def next_shard_number(names, part=None):
    """The first free shard number of a part, given the shard names that exist."""
    mine = (_SHARD_NAME.fullmatch(name) for name in names)
    key = None if part is None else (f"{part[0]:03d}", f"{part[1]:03d}")
    return 1 + max((int(m.group(3)) for m in mine
                    if m and (m.group(1) is None if key is None else m.groups()[:2] == key)),
                   default=-1)


class VideoWriter:
    """Writes one video into a shard group, one GOP at a time (resizable datasets)."""

    def __init__(self, group, height, width, max_p, dtype, compression):
        filters = COMPRESSIONS[compression]
        # One chunk per frame: training reads one I-frame and one P-frame per sampled GOP.
        # max(1, .): a chunk needs a non-zero size even where a video has no P-frames at all.
        slots = max(1, max_p)
        self.iframes = group.create_dataset(
            "iframes", (0, height, width, 3), np.uint8, maxshape=(None, height, width, 3),
            chunks=(1, height, width, 3), **filters["iframes"])
        self.mvs = group.create_dataset(
            "mvs", (0, slots, height, width, 2), dtype, maxshape=(None, slots, height, width, 2),
            chunks=(1, 1, height, width, 2), **filters["mvs"])
        self.residuals = group.create_dataset(
            "residuals", (0, slots, height, width, 3), dtype,
            maxshape=(None, slots, height, width, 3), chunks=(1, 1, height, width, 3),
            **filters["residuals"])
        self.max_p, self.num_p, self.group = max_p, [], group

    def add_gop(self, iframe, mvs, residuals):
        """Append a GOP: its I-frame and its P-frames' accumulated MVs and residuals."""
        gop, count = len(self.num_p), len(mvs)
        for dataset in (self.iframes, self.mvs, self.residuals):
            dataset.resize(gop + 1, axis=0)  # new slots read as zero until written
        self.iframes[gop] = iframe
        if count:  # one call per GOP: h5py's per-call overhead is comparable to a frame's work
            self.mvs[gop, :count] = mvs
            self.residuals[gop, :count] = residuals
        self.num_p.append(count)

    def finish(self, **attributes):
        self.group.create_dataset("num_p", data=np.asarray(self.num_p, np.int16))
        self.group.attrs.update(attributes, gops=len(self.num_p))


def read_shard(path):
    """(extraction settings, {video_id: attributes}) of one shard file."""
    with h5py.File(path, "r") as shard:
        return json.loads(shard.attrs["settings"]), {
            group.attrs["video_id"]: dict(group.attrs, group=name, num_p=group["num_p"][()])
            for name, group in shard["videos"].items()}


def shard_videos(path):
    """{video_id: attributes} of the videos stored in one shard file."""
    return read_shard(path)[1]


def read_labels(path):
    """{video_id: class name} from an annotation CSV of "video,class" lines, where video is
    the id or the relative path with any video extension."""
    labels = {}
    with open(path, newline="", encoding="utf-8") as file:
        for number, row in enumerate(csv.reader(file), 1):
            if not row or row[0].startswith("#") or (number == 1 and row[:2] == ["video", "class"]):
                continue
            if len(row) != 2:
                raise StoreError(f"{path}:{number}: expected 'video,class', got {row!r}")
            labels[strip_video_extension(row[0].strip())] = row[1].strip()
    return labels


def build_index(root, labels_file=None):
    """Write root/index.json from all complete shards (of every part); returns the index.

    Classes come from labels_file (keys: video id, or its path with extension) or else from
    the video's folder name; label indices follow the sorted class names. Shards written with
    different settings, or holding the same video twice, are refused.
    """
    root = Path(root)
    labels = read_labels(labels_file) if labels_file else None
    videos, settings, seen = [], None, {}
    for shard in sorted(root.glob(SHARD_GLOB)):
        theirs, stored = read_shard(shard)
        if settings is not None and theirs != settings:
            raise StoreError(f"{shard} was extracted with {theirs}, other shards with {settings}")
        settings = theirs
        for video_id, attrs in stored.items():
            if video_id in seen:
                raise StoreError(f"{video_id!r} is in both {seen[video_id]} and {shard.name}")
            seen[video_id] = shard.name
            if labels is None:
                class_name = attrs["folder_class"]
            else:
                class_name = labels.get(video_id)
                if class_name is None:
                    raise StoreError(f"{labels_file}: no class for video {video_id!r}")
            videos.append({
                "id": video_id, "class": class_name, "fps": float(attrs["fps"]),
                "width": int(attrs["width"]), "height": int(attrs["height"]),
                "frames": int(attrs["frames"]), "gops": int(attrs["gops"]),
                "p_frames": [int(n) for n in attrs["num_p"]], "shard": shard.name,
                "group": attrs["group"], "source": attrs["source"]})
    videos.sort(key=lambda video: video["id"])
    classes = sorted({video["class"] for video in videos})
    label_of = {name: label for label, name in enumerate(classes)}
    for video in videos:
        video["label"] = label_of[video["class"]]
    index = {"format_version": FORMAT_VERSION, "settings": settings, "classes": classes,
             "videos": videos}
    write_json(root / INDEX_NAME, index)
    return load_index(root)


@lru_cache(maxsize=8)
def _load_index(path, modified):
    index = json.loads(path.read_text(encoding="utf-8"))
    if index.get("format_version") != FORMAT_VERSION:
        raise StoreError(f"{path}: format version {index.get('format_version')}, this reader "
                         f"reads {FORMAT_VERSION}; re-run `teamnet extract` into a new folder")
    index["by_id"] = {video["id"]: video for video in index["videos"]}
    return index


def load_index(root):
    """The parsed index.json of an extracted dataset (cached until the file changes)."""
    path = Path(root).absolute() / INDEX_NAME
    if not path.is_file():
        raise StoreError(f"{path}: no index; is {root} the output folder of `teamnet extract`?")
    return _load_index(path, path.stat().st_mtime_ns)


def list_videos(root):
    """The ids of all videos in an extracted dataset, sorted."""
    return [video["id"] for video in load_index(root)["videos"]]


def read_video(root, video_id):
    """One video's representation as NumPy arrays.

    Returns iframes uint8 [G,H,W,3]; mvs int16 [G,P,H,W,2] (x, y, pixels); residuals int16
    [G,P,H,W,3] (RGB); num_p int [G] (stored P-frames per GOP; P is the largest, unused slots
    are zero); label, class_name, fps; p_stride (slot j holds the GOP's P-frame 1 + j*p_stride).
    Stored int8 values come back as int16 with the same values.
    """
    index = load_index(root)
    video = index["by_id"].get(video_id)
    if video is None:
        raise StoreError(f"{root}: no video {video_id!r} in the index")
    max_p = max(video["p_frames"], default=0)
    with h5py.File(Path(root) / video["shard"], "r") as shard:
        group = shard["videos"][video["group"]]
        return {
            "iframes": group["iframes"][()],
            "mvs": group["mvs"][:, :max_p].astype(np.int16),
            "residuals": group["residuals"][:, :max_p].astype(np.int16),
            "num_p": group["num_p"][()].astype(np.int64),
            "label": video["label"], "class_name": video["class"], "fps": video["fps"],
            "p_stride": index["settings"]["p_stride"]}


class ClipReader:
    """Reads chosen GOPs and P-frames of videos, keeping shard files open (one set per process:
    create it inside each data-loader worker, never before fork)."""

    def __init__(self, root):
        self.root = Path(root)
        self.index = load_index(root)
        self._open = {}

    def _group(self, video):
        shard = self._open.get(video["shard"])
        if shard is None:
            shard = self._open[video["shard"]] = h5py.File(self.root / video["shard"], "r")
        return shard["videos"][video["group"]]

    def read(self, video_id, gops, p_slots):
        """I-frames of `gops`, and MVs and residuals of stored P-frame p_slots[i] of gops[i].

        Returns uint8 [T,H,W,3], and [T,H,W,2] / [T,H,W,3] in the stored dtype (int8 or int16).
        """
        group = self._group(self.index["by_id"][video_id])
        iframes = np.stack([group["iframes"][g] for g in gops])
        mvs = np.stack([group["mvs"][g, k] for g, k in zip(gops, p_slots)])
        residuals = np.stack([group["residuals"][g, k] for g, k in zip(gops, p_slots)])
        return iframes, mvs, residuals

    def close(self):
        for shard in self._open.values():
            shard.close()
        self._open.clear()


def summary(root):
    """Totals of an extracted dataset: videos, classes, shards, GOPs, frames, bytes."""
    root = Path(root)
    index = load_index(root)
    videos = index["videos"]
    shards = sorted({video["shard"] for video in videos})
    size = sum((root / shard).stat().st_size for shard in shards)
    frames = sum(video["frames"] for video in videos)
    return {"videos": len(videos), "classes": len(index["classes"]), "shards": len(shards),
            "gops": sum(video["gops"] for video in videos), "frames": frames,
            "stored_p_frames": sum(sum(video["p_frames"]) for video in videos),
            "bytes": size, "bytes_per_frame": size / frames if frames else 0.0,
            "settings": index["settings"]}
