"""Reading a shard's chunks back, checked: a chunk that would not decode to exactly its size
is refused before HDF5 decodes it.

HDF5's fletcher32 checksum covers the stored (compressed) bytes, and when a filter decodes
a chunk to fewer bytes than the chunk holds, HDF5 returns the rest of its buffer as it was:
heap garbage, different on every read (measured with every filter we write: Zstd, gzip, lzf
and none). So before HDF5 reads a chunk through its filters (checksum, then decoding), the
stored bytes are read as they are (`read_direct_chunk`) and the size they decode to is found:
from the Zstd frame header (the Zstd decoder itself refuses a frame that decodes to another
size than its header declares), from the stored length where nothing compresses, by
decoding for deflate and lzf (non-default choices). An unwritten chunk is an error too,
never HDF5's zero fill.

The pipelines a dataset may have are the ones extract writes: one of Zstd, deflate (gzip) or
lzf, or none, then fletcher32 (layout.py refuses any other before a chunk is read).
"""
import os
import zlib

import h5py
import hdf5plugin
import numpy as np

FLETCHER32 = h5py.h5z.FILTER_FLETCHER32
ZSTD, DEFLATE, LZF = hdf5plugin.ZSTD_ID, h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_LZF
COMPRESSORS = (ZSTD, DEFLATE, LZF)
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_HEADER = 18  # the longest frame header: magic, descriptor, window, dictionary, size


class ChunkError(ValueError):
    """A chunk that is missing or does not decode to its size."""


def pipeline(dataset):
    """The filter ids of a dataset, in the order the writer applied them."""
    plist = dataset.id.get_create_plist()
    return tuple(plist.get_filter(i)[0] for i in range(plist.get_nfilters()))


def _zstd_size(data):
    """The content size a Zstd frame's header declares (RFC 8878 section 3.1.1.1), or None.
    The header alone: python-zstandard is an extraction dependency, not a reader's."""
    if len(data) < 6 or data[:4] != _ZSTD_MAGIC:
        return None
    descriptor = data[4]
    single_segment = descriptor >> 5 & 1
    field = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]  # content size bytes
    start = 5 + (not single_segment) + (0, 1, 2, 4)[descriptor & 3]  # window, dictionary
    if field == 0 or len(data) < start + field:
        return None  # the frame does not say
    size = int.from_bytes(data[start:start + field], "little")
    return size + 256 if field == 2 else size


_lzf_kernel = None


def _lzf_size(data, limit):
    """The length LZF data decodes to (LibLZF's format), or -1 if it is not valid LZF or
    would exceed limit. Walks the tokens without writing: a numba kernel (extraction's
    dependency) compiled on first use."""
    global _lzf_kernel
    if _lzf_kernel is None:
        try:
            import numba
        except ImportError:
            raise ChunkError("lzf chunks are checked with numba: pip install "
                             "'teamnet[preprocess]', or extract with --compression zstd") from None

        @numba.njit(cache=True, nogil=True)
        def kernel(data, limit):
            i = o = 0
            while i < len(data):
                control = np.int64(data[i])
                i += 1
                if control < 32:  # a literal run of control + 1 bytes
                    i += control + 1
                    o += control + 1
                    if i > len(data):
                        return -1
                else:  # a back reference: length (3 bits, extended by a byte), offset
                    length = control >> 5
                    if length == 7:
                        if i >= len(data):
                            return -1
                        length += np.int64(data[i])
                        i += 1
                    if i >= len(data) or o - ((control & 0x1F) << 8) - np.int64(data[i]) - 1 < 0:
                        return -1
                    i += 1
                    o += length + 2
                if o > limit:
                    return -1
            return o
        _lzf_kernel = kernel
    return _lzf_kernel(np.frombuffer(data, np.uint8), limit)


class Chunks:
    """The chunks of one dataset, read checked: `check(offset)` refuses (ChunkError) a chunk
    that was never written or that does not decode to exactly the chunk's size, `read(offset)`
    checks one and then reads it through HDF5's filters (checksum and decoding) as an array
    of the chunk's shape. offset: the coordinates of the chunk's first element."""

    def __init__(self, dataset):
        self.dataset, self.filters = dataset, pipeline(dataset)
        self.size = int(np.prod(dataset.chunks)) * dataset.dtype.itemsize
        # a plain file is read at a chunk's address: a Zstd header then costs a fifth of
        # reading the chunk through HDF5 (measured), where read_direct_chunk reads it all
        file = dataset.file
        self.fd = file.id.get_vfd_handle() if file.driver == "sec2" else None

    def _stored(self, offset, info, length=None):
        """The first `length` (default: all) stored bytes of a chunk."""
        if self.fd is not None and length is not None:
            return os.pread(self.fd, min(length, info.size), info.byte_offset)
        return self.dataset.id.read_direct_chunk(offset)[1][:length]

    def check(self, offset):
        info = self.dataset.id.get_chunk_info_by_coord(offset)
        if info.byte_offset is None:
            raise ChunkError(f"chunk {offset} was never written")
        applied = [kind for position, kind in enumerate(self.filters)  # bit set: skipped
                   if not info.filter_mask & 1 << position]
        stored = info.size - 4 * (FLETCHER32 in applied)
        compressor = next((kind for kind in applied if kind != FLETCHER32), None)
        if compressor is None:
            decoded = stored
        elif compressor == ZSTD:
            decoded = _zstd_size(self._stored(offset, info, _ZSTD_HEADER))
        elif compressor == DEFLATE:
            try:
                decoded = len(zlib.decompressobj().decompress(
                    self._stored(offset, info)[:stored], self.size + 1))
            except zlib.error:
                decoded = None
        else:
            decoded = _lzf_size(self._stored(offset, info)[:stored], self.size)
        if decoded != self.size:
            said = "an unknown number of" if decoded is None or decoded < 0 else decoded
            raise ChunkError(f"chunk {offset} decodes to {said} bytes, not its {self.size}")

    def read(self, offset):
        self.check(offset)
        return self.dataset[tuple(slice(start, start + length)
                                  for start, length in zip(offset, self.dataset.chunks))]


def read_chunk(dataset, offset):
    """One chunk of a dataset, read checked (Chunks.read)."""
    return Chunks(dataset).read(offset)
