"""What checking a chunk before HDF5 reads it costs (preprocess/store/chunks.py): ms a chunk
for Chunks.check alone, Chunks.read (check + HDF5's read), and h5py's plain dataset[g].

    python benchmarks/chunk_check.py [--chunks 200]

Chunks are I-frame sized (256x340x3 uint8) textured frames, one a chunk, fletcher32, with
Zstd level 1 (the default) and with no compression; every chunk is read once a pass (no
HDF5 chunk cache hits), best of three passes.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from preprocess.store.chunks import Chunks


def timed(function, count):
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for g in range(count):
            function(g)
        best = min(best, (time.perf_counter() - start) / count * 1e3)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=200)
    count = parser.parse_args().chunks
    rng = np.random.default_rng(0)
    frames = (rng.integers(0, 8, (count, 256, 340, 3)) * np.arange(340)[None, None, :, None]
              % 256).astype(np.uint8)
    results = {}
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "chunks.h5"
        with h5py.File(path, "w") as file:
            for name, filters in (("zstd", dict(hdf5plugin.Zstd(clevel=1))), ("none", {})):
                file.create_dataset(name, data=frames, chunks=(1, 256, 340, 3), fletcher32=True,
                                    **filters)
        with h5py.File(path, "r") as file:
            for name in ("zstd", "none"):
                dataset = file[name]
                chunks = Chunks(dataset)
                results[name] = {
                    "check_ms": timed(lambda g: chunks.check((g, 0, 0, 0)), count),
                    "checked_read_ms": timed(lambda g: chunks.read((g, 0, 0, 0)), count),
                    "h5py_read_ms": timed(lambda g: dataset[g], count)}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
