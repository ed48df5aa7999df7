"""Reading videos and clips back from the shards, through index.json."""
from pathlib import Path

import h5py
import numpy as np

from .index import load_index
from .layout import StoreError, short

_DAMAGE = (OSError, KeyError, ValueError, IndexError)  # what h5py raises on damaged files


def _damaged(root, video, error):
    return StoreError(f"{Path(root) / video['shard']}, video {video['id']!r}: cannot be read "
                      f"({short(error)}); `teamnet verify {root}` checks every shard")


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
    try:
        with h5py.File(Path(root) / video["shard"], "r") as shard:
            group = shard["videos"][video["group"]]
            arrays = {"iframes": group["iframes"][()],
                      "mvs": group["mvs"][:, :max_p].astype(np.int16),
                      "residuals": group["residuals"][:, :max_p].astype(np.int16),
                      "num_p": group["num_p"][()].astype(np.int64)}
    except _DAMAGE as error:
        raise _damaged(root, video, error) from None
    return {**arrays, "label": video["label"], "class_name": video["class"], "fps": video["fps"],
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
        video = self.index["by_id"][video_id]
        try:
            group = self._group(video)
            iframes = np.stack([group["iframes"][g] for g in gops])
            mvs = np.stack([group["mvs"][g, k] for g, k in zip(gops, p_slots)])
            residuals = np.stack([group["residuals"][g, k] for g, k in zip(gops, p_slots)])
        except _DAMAGE as error:
            raise _damaged(self.root, video, error) from None
        return iframes, mvs, residuals

    def close(self):
        for shard in self._open.values():
            shard.close()
        self._open.clear()
