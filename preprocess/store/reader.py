"""Reading videos and clips back from the shards, through index.json.

Every video's group is checked (layout.check_video) and matched with its index entry before
a chunk of it is read, and every chunk is read checked (chunks.Chunks): a hostile or
replaced shard is named, never read as other videos or as uninitialised memory.
"""
from pathlib import Path

import h5py
import numpy as np

from .chunks import Chunks
from .index import load_index
from .layout import STREAMS, UNREADABLE, StoreError, check_video, short, video_group

_MATCHED = ("width", "height", "frames", "gops")  # entry fields a group's attributes repeat


def _damaged(root, video, error):
    return StoreError(f"{Path(root) / video['shard']}, video {video['id']!r}: cannot be read "
                      f"({short(error)}); `teamnet verify {root}` checks every shard")


def open_video(shard, video, storage):
    """{stream: Chunks} of an index entry's group in an open shard, once the group
    is checked and found to hold the entry's video: a shard replaced or edited since the index
    was built (another video under the entry's group name, other shapes) is refused."""
    group = video_group(shard, video["group"])
    attrs = check_video(group, storage, f"/videos/{video['group']}")
    found = {"id": attrs["video_id"], **{key: attrs[key] for key in _MATCHED},
             "p_frames": [int(n) for n in attrs["num_p"]]}
    differ = [f"{key} {video[key]!r} in index.json, {value!r} in the shard"
              for key, value in found.items() if video[key] != value]
    if differ:
        raise StoreError(f"group {video['group']} does not hold the video index.json names "
                         f"({'; '.join(differ)}): the shard changed after the index was "
                         f"built; rebuild it with `teamnet index`")
    return {name: Chunks(group[name]) for name in STREAMS}


def _frame(stream, gop, slot=None):
    """One stored frame: an I-frame (slot None) or P-frame slot of a GOP, read checked."""
    if slot is None:
        return stream.read((gop, 0, 0, 0))[0]
    return stream.read((gop, slot, 0, 0, 0))[0, 0]


def read_video(root, video_id, gops=None):
    """One video's representation as NumPy arrays, of all its GOPs or of `gops` (a list of
    GOP numbers, in that order: memory then grows with them, not with the video).

    Returns iframes uint8 [G,H,W,3]; mvs int16 [G,P,H,W,2] (x, y, pixels); residuals int16
    [G,P,H,W,3] (RGB); num_p int [G] (stored P-frames per GOP; P is the largest, unused slots
    are zero); label, class_name, fps; p_stride (slot j holds the GOP's P-frame 1 + j*p_stride).
    Stored int8 values come back as int16 with the same values.
    """
    index = load_index(root)
    video = index["by_id"].get(video_id)
    if video is None:
        raise StoreError(f"{root}: no video {video_id!r} in the index")
    gops = list(range(video["gops"])) if gops is None else list(gops)
    if any(not 0 <= gop < video["gops"] for gop in gops):
        raise StoreError(f"{root}: {video_id!r} has {video['gops']} GOPs, numbered 0 to "
                         f"{video['gops'] - 1}")
    num_p = np.array([video["p_frames"][gop] for gop in gops], np.int64)
    max_p = max(video["p_frames"], default=0)
    shape = (len(gops), max_p, video["height"], video["width"])
    arrays = {"iframes": np.empty((*shape[:1], *shape[2:], 3), np.uint8), "num_p": num_p,
              "mvs": np.zeros((*shape, 2), np.int16), "residuals": np.zeros((*shape, 3), np.int16)}
    try:
        with h5py.File(Path(root) / video["shard"], "r") as shard:
            streams = open_video(shard, video, index["settings"]["storage"])
            for i, gop in enumerate(gops):
                arrays["iframes"][i] = _frame(streams["iframes"], gop)
                for slot in range(num_p[i]):
                    for name in ("mvs", "residuals"):
                        arrays[name][i, slot] = _frame(streams[name], gop, slot)
    except UNREADABLE as error:
        raise _damaged(root, video, error) from None
    return {**arrays, "label": video["label"], "class_name": video["class"], "fps": video["fps"],
            "p_stride": index["settings"]["p_stride"]}


DATASETS = {"iframe": "iframes", "mv": "mvs", "residual": "residuals"}  # modality: dataset


class ClipReader:
    """Reads chosen GOPs and P-frames of videos, keeping shard files and the datasets of the
    last `keep` videos open (one reader per process: create it inside each data-loader
    worker, never before fork). Opening (and checking) a video costs about as much as
    reading a few chunks.

    index and files: an index and open shard files {shard name: h5py.File} to read instead of
    root's (an extraction held in memory, preprocess/in_memory.py)."""

    def __init__(self, root, keep=512, index=None, files=None):
        self.root = Path(root or ".")
        self.index = index or load_index(root)
        self._files, self._videos, self.keep = dict(files or {}), {}, keep

    def _streams(self, video):
        streams = self._videos.get(video["id"])
        if streams is None:
            shard = self._files.get(video["shard"])
            if shard is None:
                shard = self._files[video["shard"]] = h5py.File(self.root / video["shard"], "r")
            if len(self._videos) >= self.keep:  # forget the oldest (dicts keep their order)
                del self._videos[next(iter(self._videos))]
            streams = self._videos[video["id"]] = open_video(
                shard, video, self.index["settings"]["storage"])
        return streams

    def read(self, video_id, gops, p_slots, modalities=tuple(DATASETS)):
        """{modality: frames} of the modalities asked for: I-frames of `gops` (uint8
        [T,H,W,3]), MVs and residuals of stored P-frame p_slots[i] of gops[i] ([T,H,W,2] and
        [T,H,W,3] in the stored dtype, int8 or int16). Nothing else is read."""
        video = self.index["by_id"][video_id]
        frames = {}
        try:
            streams = self._streams(video)
            for modality in modalities:
                stream = streams[DATASETS[modality]]
                frames[modality] = np.stack(
                    [_frame(stream, g) for g in gops] if modality == "iframe"
                    else [_frame(stream, g, k) for g, k in zip(gops, p_slots)])
        except UNREADABLE as error:
            raise _damaged(self.root, video, error) from None
        return frames

    def close(self):
        self._videos.clear()
        for shard in self._files.values():
            shard.close()
        self._files.clear()
