"""Reading videos and clips back from the shards, through index.json."""
from pathlib import Path

import h5py
import numpy as np

from .index import load_index
from .layout import UNREADABLE, StoreError, short


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
    except UNREADABLE as error:
        raise _damaged(root, video, error) from None
    return {**arrays, "label": video["label"], "class_name": video["class"], "fps": video["fps"],
            "p_stride": index["settings"]["p_stride"]}


DATASETS = {"iframe": "iframes", "mv": "mvs", "residual": "residuals"}  # modality: dataset


class ClipReader:
    """Reads chosen GOPs and P-frames of videos, keeping shard files and the datasets of the
    last `keep` videos open (one reader per process: create it inside each data-loader
    worker, never before fork). Opening a dataset costs about as much as reading a chunk.

    index and files: an index and open shard files {shard name: h5py.File} to read instead of
    root's (an extraction held in memory, preprocess/in_memory.py)."""

    def __init__(self, root, keep=1024, index=None, files=None):
        self.root = Path(root or ".")
        self.index = index or load_index(root)
        self._files, self._datasets, self.keep = dict(files or {}), {}, keep

    def _dataset(self, video, name):
        key = (video["id"], name)
        dataset = self._datasets.get(key)
        if dataset is None:
            shard = self._files.get(video["shard"])
            if shard is None:
                shard = self._files[video["shard"]] = h5py.File(self.root / video["shard"], "r")
            if len(self._datasets) >= self.keep:  # forget the oldest (dicts keep their order)
                del self._datasets[next(iter(self._datasets))]
            dataset = self._datasets[key] = shard["videos"][video["group"]][name]
        return dataset

    def read(self, video_id, gops, p_slots, modalities=tuple(DATASETS)):
        """{modality: frames} of the modalities asked for: I-frames of `gops` (uint8
        [T,H,W,3]), MVs and residuals of stored P-frame p_slots[i] of gops[i] ([T,H,W,2] and
        [T,H,W,3] in the stored dtype, int8 or int16). Nothing else is read."""
        video = self.index["by_id"][video_id]
        frames = {}
        try:
            for modality in modalities:
                dataset = self._dataset(video, DATASETS[modality])
                frames[modality] = np.stack([dataset[g] for g in gops] if modality == "iframe"
                                            else [dataset[g, k] for g, k in zip(gops, p_slots)])
        except UNREADABLE as error:
            raise _damaged(self.root, video, error) from None
        return frames

    def close(self):
        self._datasets.clear()
        for shard in self._files.values():
            shard.close()
        self._files.clear()
