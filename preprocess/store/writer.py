"""Writing one video's GOPs into a shard group (extract.py makes the shards themselves).

Every dataset carries HDF5's fletcher32 checksum per chunk: a damaged chunk fails to read
(and `teamnet verify` finds it) instead of returning wrong values.

Zstd datasets (hdf5plugin's standard filter, id 32015) are written chunk by chunk with
`write_direct_chunk`: each frame is compressed here (python-zstandard: standard Zstd frames,
which the filter decodes whatever parameters made them) and its fletcher32 checksum appended,
skipping h5py's per-call machinery; readers decode them through the ordinary filter pipeline
(hdf5plugin imported). A test checks the chunks and checksums against HDF5's own.
"""
import hdf5plugin
import numpy as np

ZSTD_LEVEL = 1  # measured (BENCHMARKS.md): higher levels gain little on residuals, cost much
# P-frame streams (residuals and MVs): level 1's fast strategy with a 1 KB hash table (hash_log
# 10, in the L1 cache) and matches of 7 bytes or more. Residuals are close to noise, so level
# 1's match search mostly finds nothing: this writes them about 20% faster for 7% more bytes;
# MVs come out faster and a little smaller (BENCHMARKS.md, 2026-11-30). Level 1's Huffman
# coding of literals, where nearly all of a residual's ratio comes from, is kept (negative
# levels drop it). I-frames stay at level 1: 1.82x against 1.63x, for a twelfth of the frames.
P_FRAME_ZSTD = {"window_log": 18, "hash_log": 10, "chain_log": 6, "search_log": 1,
                "min_match": 7, "target_length": 0}
_ZSTD = dict(hdf5plugin.Zstd(clevel=ZSTD_LEVEL))  # what the datasets record for readers
_LZF, _GZIP = {"compression": "lzf"}, {"compression": "gzip", "compression_opts": 1}
# Filters per stream (BENCHMARKS.md has the measurements). Residuals are close to noise: Zstd
# shrinks them 1.65-1.8x for about 0.5-0.7 ms a frame; lzf less (1.4x) for 3 ms. On I-frames
# too Zstd-1 is smaller than lzf (1.8x against 1.6x) at a third of lzf's time.
FILTERS = {
    "zstd": {"iframes": _ZSTD, "mvs": _ZSTD, "residuals": _ZSTD},
    "balanced": {"iframes": _LZF, "mvs": _LZF, "residuals": {}},
    "lzf": {"iframes": _LZF, "mvs": _LZF, "residuals": _LZF},
    "gzip": {"iframes": _GZIP, "mvs": _GZIP, "residuals": _GZIP},
    "none": {"iframes": {}, "mvs": {}, "residuals": {}},
}


def compressor(stream):
    """The Zstd compressor of a stream ("iframes", "mvs" or "residuals") for direct writes."""
    import zstandard  # extraction only: readers decode through hdf5plugin
    if stream == "iframes":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return fast_compressor()


def fast_compressor(**changes):
    """Level 1's fast strategy with P_FRAME_ZSTD's parameters, or those changed (e.g.
    hash_log=12: benchmarks/storage_filters.py compares them)."""
    import zstandard
    return zstandard.ZstdCompressor(compression_params=zstandard.ZstdCompressionParameters(
        strategy=zstandard.STRATEGY_FAST, **{**P_FRAME_ZSTD, **changes}))


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
        self.direct = {name for name, chosen in filters.items() if chosen is _ZSTD}
        if self.direct:  # extraction only: readers decode through hdf5plugin
            from ..checksum import fletcher32
            self._compress = {name: compressor(name).compress for name in self.direct}
            self._checksum = fletcher32
        self.max_p, self.num_p, self.group = max_p, [], group

    def _write(self, name, gop, frames, first=0):
        """An I-frame (frames: one) or a GOP's P-frames (frames[k] into slot first + k) of
        GOP gop."""
        dataset, is_iframe = getattr(self, name), name == "iframes"
        # a direct chunk write checks nothing: a frame of another size would be stored as a
        # chunk that decodes to the wrong number of bytes
        frame_shape = dataset.chunks[1 if is_iframe else 2:]
        if (not is_iframe and first + len(frames) > dataset.shape[1]) or any(
                frame.shape != frame_shape or frame.dtype != dataset.dtype for frame in frames):
            raise ValueError(f"{name}: {len(frames)} frames of shapes "
                             f"{sorted({f.shape for f in frames})} for a dataset of "
                             f"{dataset.shape}, {dataset.dtype}")
        if name not in self.direct:  # one call per GOP: h5py's per-call overhead is large
            if is_iframe:
                dataset[gop] = frames[0]
            else:
                dataset[gop, first:first + len(frames)] = frames
            return
        compress = self._compress[name]
        for k, frame in enumerate(frames):
            data = compress(np.ascontiguousarray(frame))
            offset = (gop,) + (() if is_iframe else (first + k,)) + (0,) * frame.ndim
            dataset.id.write_direct_chunk(offset, data + self._checksum(data))

    def add_gop(self, iframe, mvs, residuals, stored=None, first=0):
        """Append a GOP: its I-frame and its P-frames' accumulated MVs and residuals, those
        of slots first, first + 1, ... of its `stored` stored P-frames (default: all of
        them, len(mvs)). The chunks of slots not given stay unwritten: a reader refuses them
        (chunks.py), never taking HDF5's zero fill for values."""
        gop = len(self.num_p)
        for dataset in (self.iframes, self.mvs, self.residuals):
            dataset.resize(gop + 1, axis=0)  # new slots read as zero until written
        self._write("iframes", gop, iframe[None])
        if len(mvs):
            self._write("mvs", gop, mvs, first)
            self._write("residuals", gop, residuals, first)
        self.num_p.append(len(mvs) if stored is None else stored)

    def finish(self, **attributes):
        self.group.create_dataset("num_p", data=np.asarray(self.num_p, np.int16), fletcher32=True)
        self.group.attrs.update(attributes, gops=len(self.num_p))
