"""Data-loader speed: training clips/s per loader worker (T=8, 224x224, I-frame + MV + residual
or the modalities given, multi-scale crop, flip), the part spent reading HDF5, and a
DataLoader over all cores.

    python benchmarks/loader_speed.py [--data DIR] [--clips 200] [--modalities iframe]

The one-worker figures run with one torch thread, as a DataLoader worker does.

Without --data, the sample clips are encoded (340x256, GOP 12) and extracted with the default
settings first. One worker = one process doing what a DataLoader worker does for each item.
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from teamnet.data import ClipDataset, make_loader


def sample_data(work):
    from preprocess.encode import encode_dataset
    from preprocess.extract import extract_dataset
    from preprocess.samples import sample_dataset
    from preprocess.settings import EncodeSettings, ExtractSettings, ParallelSettings
    parallel = ParallelSettings(workers=2)
    encode_dataset(sample_dataset(work / "raw"), work / "encoded", EncodeSettings(), parallel)
    extract_dataset(work / "encoded", work / "data", ExtractSettings(), parallel)
    return work / "data"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--modalities", nargs="+", default=["iframe", "mv", "residual"],
                        choices=["iframe", "mv", "residual"])
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    data = args.data or sample_data(Path(tempfile.mkdtemp(prefix="teamnet-loader-")))
    from preprocess.store import load_index
    videos = [(v["id"], v["label"]) for v in load_index(data)["videos"]]
    entries = (videos * args.clips)[:args.clips]  # each repeat draws another random clip
    dataset = ClipDataset(data, entries, tuple(args.modalities), args.segments, args.size,
                          train=True)
    keys = [(0, i) for i in range(len(entries))]
    dataset[keys[0]]  # open the shards

    start = time.perf_counter()
    for key in keys:
        dataset[key]
    per_worker = len(keys) / (time.perf_counter() - start)

    reader, read_time = dataset.reader, 0.0
    from teamnet.sampling import sample_clip
    for epoch, i in keys:
        gops, slots = sample_clip(dataset.num_p[i], args.segments, dataset.needs_p_frames,
                                  np.random.default_rng((0, epoch, i)))
        t = time.perf_counter()
        reader.read(entries[i][0], gops, slots, dataset.modalities)
        read_time += time.perf_counter() - t
    read_share = read_time / (len(keys) / per_worker)

    workers = os.cpu_count()
    loader = make_loader(dataset, args.batch, workers, train=True)
    iterator = iter(loader)
    next(iterator)  # workers started
    start, batches = time.perf_counter(), 0
    for _ in iterator:
        batches += 1
    all_workers = batches * args.batch / (time.perf_counter() - start)
    print(json.dumps({"clips_per_s_per_worker": per_worker, "hdf5_read_share": read_share,
                      f"clips_per_s_dataloader_{workers}_workers": all_workers,
                      "settings": {**vars(args), "data": str(data)}}, indent=1))


if __name__ == "__main__":
    main()
