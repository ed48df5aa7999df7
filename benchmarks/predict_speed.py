"""`teamnet predict` at scale: videos/s with 1 and N workers against the ceiling, encoded
input against raw input, and peak memory on long inputs.

    python benchmarks/predict_speed.py throughput [--videos 32] [--workers 1 2]
    python benchmarks/predict_speed.py memory [--minutes 1 10]
    python benchmarks/predict_speed.py stages        # one 10 s clip, stage by stage
    python benchmarks/predict_speed.py long [--minutes 1 5 30] [--sizes 640x360 1280x720]

throughput: --videos short clips (2 s pieces of the sample clips, copies under new names) are
predicted as `teamnet predict` does it (preprocess.parallel.run_parallel over FileClips, the
model scoring --batch videos a step in this process), once per --workers value, timed from
the first task to the last score; each worker count is warmed up first (its processes start
once a run). The ceiling is --workers x the rate of one process held to one core that only
re-encodes and extracts the same clips, measured in the same run, or the model's own rate
where that is lower. The model is small (ResNet-18 branches, 32 px, 8 segments), so that
preprocessing, the part workers parallelise, is what is measured; `stages` shows the paper's
model on a CPU. Then the same clips as `teamnet encode` wrote them are predicted, which
skips the re-encode.

long: one long H.264 input of each --minutes and --sizes (the bikes clip looped, x264 at
--preset: superfast, like every preset but ultrafast, puts a keyframe at each of the clip's
scene cuts, about 50 frames apart; ultrafast only every 250 frames, the worst case for
seeking; --audio adds an AAC track, as uploads have, which demuxing must skip), and its
`teamnet encode` output: predict's preprocessing of its 25-segment clip (best of two a
round, the median of --rounds rounds alternated with decord's), stage by stage (demux,
probe, cut: the packets each group needs copied out, decode + re-encode in one ffmpeg,
extract), against decord reading the same 25 segments' centre frames as MMAction2's test
pipeline does (one thread; pip-installed into the benchmark's folder, no dependency) and, up
to --whole-up-to minutes, against the whole-video path (re-encode all, extract the kept
GOPs); and each side's growth from the two longest inputs' medians. On the H.264 inputs the
one ffmpeg is also timed reading the cuts against seeking in the source (best of three each,
alternated). Then 16 copies of the 10 s bikes clip through predict with 1 and 2 workers
(best of three each, alternated), with the cores the machine kept busy meanwhile (from
/proc/stat, so any other load counts too: the speed-up two workers can give on two cores is
about 2 / the cores one worker keeps busy), and, as the ceiling of that speed-up, the ffmpeg
of one copy's clip alone, run one at a time against two at once.

memory: a 640x360 H.264 input of each --minutes length (the sample clip looped) is
predicted in a process of its own (--workers 0); its peak resident memory, and ffmpeg's,
are reported.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).parent.parent


def small_checkpoint(work, arch="resnet18", size=112, classes=101):
    """A TEAM-Net checkpoint with untrained weights (speed does not depend on them)."""
    from preprocess.settings import EncodeSettings, ExtractSettings
    from teamnet import checkpoint
    from teamnet.config import DataConfig, ModelConfig, TrainConfig
    from teamnet.model import build_model
    config = TrainConfig(data=DataConfig(data=str(work), input_size=size),
                         model=ModelConfig(iframe_arch=arch, pretrained="none"))
    recorded = {**ExtractSettings().recorded(),
                "encode": {**vars(EncodeSettings()), "size": [340, 256]}}
    model = build_model(config.model, classes)
    path = work / f"model-{arch}-{size}.pt"
    checkpoint.save(path, {"model": model.state_dict(), "config": config.as_dict(),
                           "classes": [f"class{k}" for k in range(classes)],
                           "data_settings": recorded})
    return path


def short_clips(work, count, ffmpeg):
    """count files: 2 s pieces of the sample clips (H.264), repeated under new names."""
    from preprocess.samples import sample_folder
    pieces = []
    for source in sorted(sample_folder().glob("*.mp4")):
        for start in (0, 2):
            piece = work / "pieces" / f"{source.stem}-{start}.mp4"
            piece.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([ffmpeg, "-v", "error", "-y", "-ss", str(start), "-t", "2", "-i",
                            str(source), "-an", "-c:v", "libx264", "-preset", "veryfast",
                            str(piece)], check=True)
            pieces.append(piece)
    clips = work / "raw" / "clips"
    clips.mkdir(parents=True)
    for n in range(count):
        shutil.copy(pieces[n % len(pieces)], clips / f"clip{n:03d}.mp4")
    return sorted(clips.iterdir())


def predicting(checkpoint_path, paths, workers, batch, segments):
    """Seconds to predict paths as the command does, and the number of videos scored."""
    import functools

    from preprocess.in_memory import encoder_of, represent
    from preprocess.parallel import run_parallel
    from preprocess.settings import ParallelSettings
    from teamnet.config import PredictConfig
    from teamnet.predict import FileClips, Predictor, score_all
    predictor = Predictor(PredictConfig(checkpoint=str(checkpoint_path),
                                        num_segments=segments))
    made = functools.partial(represent, recorded=predictor.data_settings,
                             encoder=encoder_of(predictor.data_settings))
    if workers > 1:  # as the command does
        predictor.leave_cores(workers)
    tasks = [(k, str(path), None) for k, path in enumerate(paths)]
    start = time.perf_counter()
    clips = run_parallel(FileClips(made, predictor.make), tasks,
                         ParallelSettings(workers=max(1, workers)), f"{workers} worker(s)")
    scored = sum(p is not None for _, p, _ in score_all(predictor, clips, batch))
    return time.perf_counter() - start, scored


def preprocessing_only(checkpoint_path, paths, segments):
    """Seconds one process takes to re-encode and extract paths, as a worker does."""
    from preprocess.in_memory import encoder_of, represent
    from teamnet import checkpoint
    from teamnet.config import PredictConfig
    from teamnet.predict import Predictor
    predictor = Predictor(PredictConfig(checkpoint=str(checkpoint_path),
                                        num_segments=segments))
    recorded = checkpoint.load(checkpoint_path)["data_settings"]
    encoder = encoder_of(recorded)
    start = time.perf_counter()
    for path in paths:
        file, _ = represent(path, recorded, encoder, predictor.make.gops_to_keep,
                            reads=predictor.make.frames_read)
        file.close()
    return time.perf_counter() - start


def model_rate(checkpoint_path, path, batch, segments, steps=5):
    """Videos/s of the model alone: one clip's batch scored again and again."""
    from preprocess.in_memory import encoder_of, represent
    from teamnet.config import PredictConfig
    from teamnet.predict import Predictor
    predictor = Predictor(PredictConfig(checkpoint=str(checkpoint_path),
                                        num_segments=segments))
    file, index = represent(path, predictor.data_settings,
                            encoder_of(predictor.data_settings), predictor.make.gops_to_keep,
                            reads=predictor.make.frames_read)
    with file:
        (entry,) = index["by_id"].values()
        clip, _ = predictor.make(index, {entry["shard"]: file})
    predictor.score([clip] * batch)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        predictor.score([clip] * batch)
    return steps * batch / (time.perf_counter() - start)


def throughput(args, work):
    from preprocess.encode import find_ffmpeg
    ffmpeg = find_ffmpeg()
    checkpoint_path = small_checkpoint(work, args.arch, args.size)
    paths = short_clips(work, args.videos, ffmpeg)
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # one core (ffmpeg inherits it): a worker's share
    try:
        one = preprocessing_only(checkpoint_path, paths[:8], args.segments) / 8
    finally:
        os.sched_setaffinity(0, cores)
    rows = {}
    for workers in args.workers:
        # the workers start once a run (a process each, importing torch): not what is measured
        predicting(checkpoint_path, paths[:2 * workers], workers, args.batch, args.segments)
        seconds, scored = predicting(checkpoint_path, paths, workers, args.batch, args.segments)
        assert scored == len(paths), scored
        rows[f"raw, {workers} worker(s)"] = len(paths) / seconds
    encoded = work / "encoded"
    subprocess.run([sys.executable, "-m", "cli", "encode", str(work / "raw"), str(encoded),
                    "--workers", "2"], check=True, cwd=ROOT, capture_output=True)
    paths = sorted((encoded / "clips").glob("*.mp4"))
    workers = max(args.workers)
    predicting(checkpoint_path, paths[:2 * workers], workers, args.batch, args.segments)
    seconds, scored = predicting(checkpoint_path, paths, workers, args.batch, args.segments)
    rows[f"teamnet encode output, {workers} worker(s)"] = len(paths) / seconds
    model = model_rate(checkpoint_path, paths[0], args.batch, args.segments)
    ceiling = min(model, max(args.workers) / one)
    print(f"\none core re-encodes + extracts a clip in {one:.3f} s; the model alone "
          f"scores {model:.1f} videos/s: ceiling with {max(args.workers)} workers "
          f"{ceiling:.2f} videos/s")
    for name, rate in rows.items():
        print(f"  {name:<40} {rate:6.2f} videos/s  ({rate / ceiling:.2f} x ceiling)")
    return {"preprocess_s_per_video": one, "model_videos_per_s": model,
            "ceiling_videos_per_s": ceiling,
            "videos_per_s": rows}


MEASURE = """
import resource, sys
from click.testing import CliRunner
from cli import main
result = CliRunner().invoke(main, sys.argv[1:])
assert result.exit_code == 0, result.output
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def memory(args, work):
    from preprocess.encode import find_ffmpeg
    from preprocess.samples import sample_folder
    ffmpeg = find_ffmpeg()
    checkpoint_path = small_checkpoint(work, "resnet50", 224)  # the paper's model
    rows = {}
    for minutes in args.minutes:
        long = work / f"long-{minutes}min.mp4"
        subprocess.run([ffmpeg, "-v", "error", "-y", "-stream_loop", "-1", "-i",
                        str(sample_folder() / "bikes.mp4"), "-t", str(60 * minutes), "-an",
                        "-vf", "scale=640:360", "-c:v", "libx264", "-preset", "ultrafast",
                        str(long)], check=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", MEASURE, "predict", "--checkpoint",
                               str(checkpoint_path), "--workers", "0", "--json", str(long)],
                              capture_output=True, text=True, cwd=ROOT, check=True)
        own, child = map(int, done.stdout.split("PEAK")[1].split())
        rows[f"{minutes} min"] = {"predict_peak_mib": own / 2**20,
                                  "ffmpeg_peak_mib": child / 2**20,
                                  "seconds": time.perf_counter() - start}
        print(f"{minutes:>3} min 640x360: predict peak {own / 2**20:,.0f} MiB, ffmpeg "
              f"{child / 2**20:,.0f} MiB, {rows[f'{minutes} min']['seconds']:.0f} s")
    return rows


DECORD = """
import sys, time
import decord
best = None
for _ in range(2):
    start = time.perf_counter()
    reader = decord.VideoReader(sys.argv[1], num_threads=1)
    step = len(reader) / 25  # MMAction2's test sampling: the centre frame of 25 segments
    reader.get_batch([int(step * k + step / 2) for k in range(25)]).asnumpy()
    seconds = time.perf_counter() - start
    best = seconds if best is None else min(best, seconds)
print(best)
"""


def decord_seconds(work, path):
    """MMAction2's test-time reading of path with decord (installed for this benchmark only,
    into its own folder): best of two, seconds."""
    peer = work / "peer"
    if not peer.is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(peer),
                        "decord"], check=True)
    done = subprocess.run([sys.executable, "-c", DECORD, str(path)], check=True, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(peer)})
    return float(done.stdout.split()[-1])


def long_input(work, ffmpeg, minutes, size, preset, audio=False):
    """A looped H.264 input of the bikes clip (x264 at `preset`; with audio, an AAC track as
    an upload has, interleaved) and its `teamnet encode` output."""
    from dataclasses import replace

    from preprocess.encode import encode_video
    from preprocess.samples import sample_folder
    from preprocess.settings import EncodeSettings
    raw = work / f"long-{minutes}min-{size}.mp4"
    sound = (["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-map", "0:v",
              "-map", "1:a", "-c:a", "aac", "-b:a", "64k"] if audio else ["-an"])
    subprocess.run([ffmpeg, "-v", "error", "-y", "-stream_loop", "-1", "-i",
                    str(sample_folder() / "bikes.mp4"), *sound, "-t", str(60 * minutes),
                    "-vf", f"scale={size.replace('x', ':')}", "-c:v", "libx264", "-preset",
                    preset, str(raw)], check=True)
    encoded = work / "encoded" / raw.name
    encoded.parent.mkdir(exist_ok=True)
    (encoded.parent / "encode-settings.json").write_text(json.dumps(
        {**vars(EncodeSettings()), "size": [340, 256], "ffmpeg": None}))
    result = encode_video(raw, encoded, replace(EncodeSettings(), ffmpeg=ffmpeg))
    assert result.status == "encoded", result
    return raw, encoded


def best_of(runs, measure):
    return min(measure() for _ in range(runs))


def alternated(rounds, measures):
    """{name: median, name_rounds: [seconds]} of measures {name: () -> seconds}, each taken
    once a round, in turn, `rounds` rounds: a disturbance of the box (a few tenths of a
    second, at times) then falls on every side alike and the median leaves it out."""
    taken = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            taken[name].append(measure())
    return {**{name: float(np.median(values)) for name, values in taken.items()},
            **{f"{name}_rounds": values for name, values in taken.items()}}


def spread(values):
    return f"{min(values):.2f}-{max(values):.2f}"


def growths(rows):
    """Each side's growth from the second longest to the longest input of a size and kind
    (5 and 30 min by default), from the medians: the target is that ours grows no more than
    decord's."""
    grown = {}
    for row in rows:
        key = f"{row['size']} {row['kind']}"
        grown.setdefault(key, []).append(row)
    summary = {}
    for key, same in grown.items():
        same = sorted(same, key=lambda row: row["minutes"])
        if len(same) < 2:
            continue
        first, last = same[-2], same[-1]
        summary[f"{key}, {first['minutes']:g} to {last['minutes']:g} min"] = {
            side: last[f"{side}_s"] - first[f"{side}_s"] for side in ("ours", "decord")}
    for key, grew in summary.items():
        print(f"growth {key}: ours {grew['ours']:+.2f} s, decord {grew['decord']:+.2f} s")
    return summary


def long_inputs(args, work):
    """predict's preprocessing of one long video against decord's and today's whole path."""
    from preprocess.encode import find_ffmpeg
    from preprocess.in_memory import (encode_to, encoder_of, extract_in_memory, represent,
                                      sampled_in_memory, work_folder)
    from preprocess.sampled import _stream_index
    from teamnet.config import PredictConfig
    from teamnet.predict import Predictor
    ffmpeg = find_ffmpeg()
    checkpoint_path = small_checkpoint(work, args.arch, args.size)
    predictor = Predictor(PredictConfig(checkpoint=str(checkpoint_path)))  # 25 segments
    recorded, keep = predictor.data_settings, predictor.make.gops_to_keep
    reads, encoder = predictor.make.frames_read, encoder_of(recorded)

    def ours(path):
        _stream_index.cache_clear()  # each run counts its frames, as predict does once a video
        start = time.perf_counter()
        file, index = represent(path, recorded, encoder, keep, reads=reads)
        assert index["decoded"]["decoded"] != "whole", index["decoded"]
        file.close()
        return time.perf_counter() - start

    def whole(path):
        start = time.perf_counter()
        with work_folder() as folder:
            extract_in_memory(encode_to(path, folder, encoder), recorded, keep)[0].close()
        return time.perf_counter() - start

    rows = []
    for size in args.sizes:
        for minutes in args.minutes:
            raw, encoded = long_input(work, ffmpeg, minutes, size, args.preset,
                                      args.audio)
            for kind, path in (("H.264", raw), ("teamnet encode", encoded)):
                row = {"input": f"{minutes:g} min {size} {kind}", "size": size,
                       "minutes": minutes, "kind": kind,
                       **alternated(args.rounds, {"decord_s": lambda: decord_seconds(work, path),
                                                  "ours_s": lambda: best_of(2, lambda: ours(
                                                      path))})}
                if kind == "H.264":
                    stages = {}
                    _stream_index.cache_clear()
                    with work_folder() as folder:
                        sampled_in_memory(path, recorded, encoder, keep, folder,
                                          reads=reads, timings=stages)[0].close()
                    row["stages_s"] = stages
                    index, groups = clip_groups(path, recorded, keep, reads)
                    row["ffmpeg_s"], cut = cut_against_seek(path, index, groups, encoder, reads)
                    row["frames_decoded"] = frames_decoded(index, groups, cut)
                    if minutes <= args.whole_up_to:
                        row["today_s"] = whole(path)
                rows.append(row)
                print(f"{row['input']:<32} ours {row['ours_s']:6.2f} s  decord "
                      f"{row['decord_s']:6.2f} s  ({row['ours_s'] / row['decord_s']:.2f}x; "
                      f"rounds {spread(row['ours_s_rounds'])} and "
                      f"{spread(row['decord_s_rounds'])} s)"
                      + (f"  today's path {row['today_s']:6.1f} s "
                         f"({row['today_s'] / row['ours_s']:.1f}x ours)" if "today_s" in row
                         else "")
                      + ("".join(f"\n    {k} {v:.3f} s" for k, v in row["stages_s"].items())
                         if "stages_s" in row else "")
                      + ("".join(f"\n    one ffmpeg, {k}: {v:.3f} s"
                                 for k, v in row["ffmpeg_s"].items())
                         if "ffmpeg_s" in row else "")
                      + (f"\n    frames decoded: ours {row['frames_decoded']['ours']}, "
                         f"decord at least {row['frames_decoded']['decord']}"
                         if "frames_decoded" in row else ""))
            raw.unlink()
            encoded.unlink()
    growth = growths(rows)
    model = best_of(3, lambda: _model_seconds(predictor, recorded, encoder, keep, reads))
    print(f"model (one clip, {args.arch} at {args.size} px): {model:.3f} s")
    return {"rows": rows, "growth": growth, "model_s": model,
            "workers": workers_scaling(args, work)}


def clip_groups(path, recorded, keep, reads):
    """(StreamIndex, groups of runs) of a file's 25-segment clip, as predict plans them."""
    from preprocess.in_memory import gop_plan
    from preprocess.sampled import seek_groups, stream_index
    index = stream_index(path)
    return index, seek_groups(index, gop_plan(index.frames, recorded, keep, reads)[0])


def clip_encoding(path, encoder, reads):
    """(probe of path, output size, encoder settings) of the one ffmpeg that encodes a
    clip's groups of path, as predict runs it."""
    from preprocess.decode import probe
    from preprocess.encode import output_size
    from preprocess.in_memory import run_encoding
    info = probe(path)
    return info, output_size(info.width, info.height, encoder), run_encoding(encoder, reads)


def cut_against_seek(path, index, groups, encoder, reads, runs=3):
    """Seconds of the one ffmpeg that decodes and re-encodes a clip's groups, reading the
    packets cut out of the source (with the cutting) and seeking in the source itself:
    best of `runs` each, alternated; and the packets the cuts held."""
    from preprocess.sampled import cut_inputs, encode_runs, seek_inputs
    info, size, settings = clip_encoding(path, encoder, reads)
    seconds, cut = {"cut inputs": [], "seek inputs": []}, 0
    with tempfile.TemporaryDirectory() as folder:
        for run in range(runs):
            for kind in seconds:
                start = time.perf_counter()
                cuts = Path(folder) / f"{kind} {run}"
                cuts.mkdir()
                inputs = (cut_inputs(path, index, groups, cuts) if kind == "cut inputs"
                          else seek_inputs(path, index, groups, info.stream))
                subprocess.run(encode_runs(inputs, cuts / "out.mp4", groups, size, settings),
                               check=True)
                seconds[kind].append(time.perf_counter() - start)
                if kind == "cut inputs" and run == 0:  # the same cuts every run
                    cut = sum(packet_count(source.path) for source in inputs)
    return {kind: min(values) for kind, values in seconds.items()}, cut


def packet_count(path):
    import av
    with av.open(path) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def frames_decoded(index, groups, cut):
    """Frames each side must decode: ours, the packets cut out for the clip's groups (cut:
    those the cuts hold, the unreferenced frames the clip does not read left out);
    decord's, from the keyframe before each of its 25 centre frames to it (or from the
    frame before, within one keyframe interval): the least it decodes, every frame on the
    way."""
    from bisect import bisect_right

    from preprocess.sampled import packet_span
    ours = sum(packets.stop - packets.start for packets in
               (packet_span(index, group[0][0], group[-1][0] + group[-1][1])
                for group in groups))
    step, decord, last = index.frames / 25, 0, -1
    for centre in (int(step * k + step / 2) for k in range(25)):
        key = index.keyframes[bisect_right(index.keyframes, centre) - 1]
        decord += centre - (key - 1 if key > last else last)
        last = centre
    return {"ours": cut, "ours_without_leaving_out": ours, "decord": decord}


def _model_seconds(predictor, recorded, encoder, keep, reads):
    from preprocess.in_memory import represent
    from preprocess.samples import sample_folder
    file, index = represent(sample_folder() / "bikes.mp4", recorded, encoder, keep,
                            reads=reads)
    with file:
        (entry,) = index["by_id"].values()
        clip, _ = predictor.make(index, {entry["shard"]: file})
    start = time.perf_counter()
    predictor.score([clip])
    return time.perf_counter() - start


def workers_scaling(args, work):
    """16 copies of the 10 s bikes clip through predict with 1 and 2 workers."""
    from preprocess.samples import sample_folder
    copies = work / "copies"
    copies.mkdir()
    paths = [copies / f"bikes{n:02d}.mp4" for n in range(16)]
    for path in paths:
        shutil.copy(sample_folder() / "bikes.mp4", path)
    checkpoint_path = small_checkpoint(work, "resnet18", 32)
    seconds, cores = {1: float("inf"), 2: float("inf")}, {}
    for _ in range(3):  # best of three each, alternated: a run of 5 s is easily disturbed
        for workers in (1, 2):
            predicting(checkpoint_path, paths[:2 * workers], workers, args.batch, 25)  # warm
            busy = busy_seconds()
            taken, scored = predicting(checkpoint_path, paths, workers, args.batch, 25)
            assert scored == len(paths), scored
            if taken < seconds[workers]:
                seconds[workers] = taken
                cores[workers] = (busy_seconds() - busy) / taken
    for workers in (1, 2):
        print(f"16 x bikes.mp4, --workers {workers}: {seconds[workers]:.1f} s, "
              f"{cores[workers]:.2f} cores busy")
    print(f"  2 workers: {seconds[1] / seconds[2]:.2f}x one "
          f"(about {os.cpu_count() / cores[1]:.2f}x at most on {os.cpu_count()} cores)")
    alone = ffmpeg_alone(paths[0], checkpoint_path)
    return {"seconds": seconds, "cores_busy": cores, "ffmpeg_alone": alone}


def ffmpeg_alone(path, checkpoint_path, runs=16, rounds=3):
    """The ceiling of two workers' speed-up: the one ffmpeg that decodes and re-encodes a
    clip of path (its cuts made once), `runs` times one at a time against `runs` times two
    at once (each of two threads starting half), best of `rounds` alternated."""
    import threading

    from preprocess.in_memory import encoder_of
    from preprocess.sampled import cut_inputs, encode_runs
    from teamnet.config import PredictConfig
    from teamnet.predict import Predictor
    predictor = Predictor(PredictConfig(checkpoint=str(checkpoint_path)))
    recorded, encoder = predictor.data_settings, encoder_of(predictor.data_settings)
    reads = predictor.make.frames_read
    index, groups = clip_groups(path, recorded, predictor.make.gops_to_keep, reads)
    _, size, settings = clip_encoding(path, encoder, reads)
    with tempfile.TemporaryDirectory() as folder:
        inputs = cut_inputs(path, index, groups, folder)

        def run(lane, count):
            command = encode_runs(inputs, Path(folder) / f"out-{lane}.mp4", groups, size,
                                  settings)
            for _ in range(count):
                subprocess.run(command, check=True)

        def taken(lanes):
            start = time.perf_counter()
            threads = [threading.Thread(target=run, args=(lane, runs // lanes))
                       for lane in range(lanes)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return time.perf_counter() - start

        best = {1: float("inf"), 2: float("inf")}
        for _ in range(rounds):
            for lanes in best:
                best[lanes] = min(best[lanes], taken(lanes))
    print(f"  its ffmpeg alone, {runs} runs: {best[1]:.2f} s one at a time, {best[2]:.2f} s "
          f"two at once ({best[1] / best[2]:.2f}x)")
    return {"one_at_a_time_s": best[1], "two_at_once_s": best[2]}


def busy_seconds():
    """CPU seconds this machine has spent busy since boot, all cores (/proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def stages(args, work):
    """One 10 s clip through each stage, the paper's model (the earlier benchmark)."""
    from preprocess.in_memory import encode_to, encoder_of, extract_in_memory
    from preprocess.samples import sample_folder
    from teamnet.config import PredictConfig
    from teamnet.predict import Predictor
    checkpoint_path = small_checkpoint(work, "resnet50", 224)
    predictor = Predictor(PredictConfig(checkpoint=str(checkpoint_path)))
    encoder = encoder_of(predictor.data_settings)
    times = {"encode": [], "extract": [], "model": []}
    for run in range(4):  # the first warms up
        folder = work / f"run{run}"
        folder.mkdir()
        start = time.perf_counter()
        encoded = encode_to(sample_folder() / "bikes.mp4", folder, encoder)
        encoded_at = time.perf_counter()
        file, index = extract_in_memory(encoded, predictor.data_settings,
                                        predictor.make.gops_to_keep)
        extracted_at = time.perf_counter()
        with file:
            (entry,) = index["by_id"].values()
            clip, _ = predictor.make(index, {entry["shard"]: file})
        predictor.score([clip])
        done = time.perf_counter()
        if run:
            for name, seconds in (("encode", encoded_at - start),
                                  ("extract", extracted_at - encoded_at),
                                  ("model", done - extracted_at)):
                times[name].append(seconds)
    best = {name: min(values) for name, values in times.items()}
    for name, seconds in best.items():
        print(f"  {name:<8} {seconds:6.2f} s")
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("throughput", "memory", "stages", "long"))
    parser.add_argument("--videos", type=int, default=32, help="clips [default: 32]")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to compare [default: 1 2]")
    parser.add_argument("--batch", type=int, default=4, help="videos a model step [default: 4]")
    parser.add_argument("--segments", type=int, default=8, help="segments [default: 8]")
    parser.add_argument("--arch", default="resnet18",
                        help="throughput: the I-frame backbone [default: resnet18]")
    parser.add_argument("--size", type=int, default=32,
                        help="throughput: the input size [default: 32, a model that costs "
                             "little beside preprocessing]")
    parser.add_argument("--minutes", type=float, nargs="+", default=None,
                        help="lengths of the long inputs [default: memory 1 10, long 1 5 30]")
    parser.add_argument("--sizes", nargs="+", default=["640x360", "1280x720"],
                        help="long: the inputs' sizes [default: 640x360 1280x720]")
    parser.add_argument("--preset", default="superfast",
                        help="long: x264's preset for the inputs [default: superfast, "
                             "keyframes at scene cuts; ultrafast: every 250 frames]")
    parser.add_argument("--audio", action="store_true",
                        help="long: give the inputs an AAC track, as uploads have")
    parser.add_argument("--rounds", type=int, default=5,
                        help="long: rounds of ours and decord, alternated, whose medians are "
                             "compared (each round best of two a side) [default: 5]")
    parser.add_argument("--whole-up-to", type=float, default=5,
                        help="long: time today's whole-video path on inputs up to this many "
                             "minutes [default: 5]")
    args = parser.parse_args()
    if args.minutes is None:
        args.minutes = [1, 5, 30] if args.mode == "long" else [1, 10]
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="teamnet-bench-predict-"))
    try:
        result = {"throughput": throughput, "memory": memory, "stages": stages,
                  "long": long_inputs}[args.mode](args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"machine": f"{platform.node()} {platform.machine()}",
                      "threads": torch.get_num_threads(), "result": result,
                      "settings": vars(args)}))


if __name__ == "__main__":
    main()
