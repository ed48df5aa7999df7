"""Writing one video's GOPs into a shard group (extract.py makes the shards themselves).

Every dataset carries HDF5's fletcher32 checksum per chunk: a damaged chunk fails to read
(and `teamnet verify` finds it) instead of returning wrong values."""
import numpy as np

_LZF, _GZIP = {"compression": "lzf"}, {"compression": "gzip", "compression_opts": 1}
# HDF5 filters per stream, all built into h5py (the GPU image has no hdf5plugin). Measured
# (BENCHMARKS.md): lzf shrinks MVs ~14x for ~0.17 ms a frame, but residuals, close to noise,
# only ~1.4x for ~1 ms a frame (more than decoding), so "balanced" leaves residuals raw.
FILTERS = {
    "balanced": {"iframes": _LZF, "mvs": _LZF, "residuals": {}},
    "lzf": {"iframes": _LZF, "mvs": _LZF, "residuals": _LZF},
    "gzip": {"iframes": _GZIP, "mvs": _GZIP, "residuals": _GZIP},
    "none": {"iframes": {}, "mvs": {}, "residuals": {}},
}


class VideoWriter:
    """Writes one video into a shard group, one GOP at a time (resizable datasets)."""

    def __init__(self, group, height, width, max_p, dtype, compression):
        filters = FILTERS[compression]
        # One chunk per frame: training reads one I-frame and one P-frame per sampled GOP.
        # max(1, .): a chunk needs a non-zero size even where a video has no P-frames at all.
        slots = max(1, max_p)
        self.iframes = group.create_dataset(
            "iframes", (0, height, width, 3), np.uint8, maxshape=(None, height, width, 3),
            chunks=(1, height, width, 3), fletcher32=True, **filters["iframes"])
        self.mvs = group.create_dataset(
            "mvs", (0, slots, height, width, 2), dtype, maxshape=(None, slots, height, width, 2),
            chunks=(1, 1, height, width, 2), fletcher32=True, **filters["mvs"])
        self.residuals = group.create_dataset(
            "residuals", (0, slots, height, width, 3), dtype,
            maxshape=(None, slots, height, width, 3), chunks=(1, 1, height, width, 3),
            fletcher32=True, **filters["residuals"])
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
        self.group.create_dataset("num_p", data=np.asarray(self.num_p, np.int16), fletcher32=True)
        self.group.attrs.update(attributes, gops=len(self.num_p))
