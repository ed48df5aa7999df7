"""Model cost and speed: parameters, GFLOPs per clip, training clips/s, inference videos/s.

    python benchmarks/model_speed.py                       # the paper's TEAM-Net, this device
    python benchmarks/model_speed.py --batch 80 --bf16 --channels-last --compile   # on a GPU

Training: T segments (8) per clip at --size (224), SGD steps on random inputs, --batch clips a
step. Inference: the paper's test protocol, 25 segments per video, --infer-batch videos a step.
FLOPs are counted by torch.utils.flop_counter (a multiply-add counts 2).
"""
import argparse
import json
import platform
import time
from contextlib import nullcontext

import torch
from torch.utils.flop_counter import FlopCounterMode

from teamnet.model import TSN, CoViAR, TEAMNet

MODELS = {"teamnet": TEAMNet, "tsn": TSN, "coviar": CoViAR}


def random_clips(batch, segments, size, device, channels_last):
    layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    return {m: torch.randn(batch, segments, c, size, size, device=device).contiguous(
                memory_format=layout) for m, c in (("iframe", 3), ("mv", 2), ("residual", 3))}


def gflops(model, inputs):
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(inputs)
    return counter.get_total_flops() / 1e9


def team_cost(model, args):
    """What the TEAM modules add: their parameters, and the GFLOPs of the same TEAM-Net with
    and without them (T segments, one clip)."""
    if not isinstance(model, TEAMNet) or not model.teams:
        return {}
    device = next(model.parameters()).device
    bare = TEAMNet(400, positions=()).to(device).eval()
    inputs = random_clips(1, args.segments, args.size, device, False)
    return {"team_parameters_M": sum(p.numel() for p in model.teams.parameters()) / 1e6,
            f"team_gflops_per_clip_T{args.segments}": gflops(model.eval(), inputs) - gflops(bare, inputs)}


def timed(step, steps, device):
    """(seconds of the first step, which compiles where anything does, and seconds a step
    after a second warm-up)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - start
    step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return first, (time.perf_counter() - start) / steps


def measure(model, clips, labels, videos, autocast, args, device):
    """Training clips/s and inference videos/s of model, and its first steps' seconds."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)

    def train_step():
        with autocast:
            loss = model.loss(model(clips), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step():
        with torch.no_grad(), autocast:
            model(videos)["logits"].argmax(1)

    model.train()
    train_first, train_s = timed(train_step, args.steps, device)
    model.eval()
    infer_first, infer_s = timed(infer_step, args.steps, device)
    return {"train_clips_per_s": args.batch / train_s,
            "infer_videos_per_s": args.infer_batch / infer_s,
            "first_train_step_s": train_first, "first_infer_step_s": infer_first}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, default="teamnet")
    parser.add_argument("--batch", type=int, default=2, help="training clips a step")
    parser.add_argument("--infer-batch", type=int, default=1, help="test videos a step")
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--test-segments", type=int, default=25)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true",
                        help="also time the model compiled piece by piece "
                             "(teamnet/compiled.py), with its compile time")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True

    model = MODELS[args.model](400).to(device)
    parameters = sum(p.numel() for p in model.parameters())
    flops_train = gflops(model.eval(), random_clips(1, args.segments, args.size, device, False))
    flops_test = gflops(model, random_clips(1, args.test_segments, args.size, device, False))
    cost = team_cost(model, args)  # counted on the eager model
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else nullcontext())
    clips = random_clips(args.batch, args.segments, args.size, device, args.channels_last)
    labels = torch.randint(0, 400, (args.batch,), device=device)
    videos = random_clips(args.infer_batch, args.test_segments, args.size, device,
                          args.channels_last)
    speeds = {"eager": measure(model, clips, labels, videos, autocast, args, device)}
    if args.compile:
        from teamnet.compiled import compile_regions
        speeds["compiled"] = measure(compile_regions(model), clips, labels, videos, autocast,
                                     args, device)
    result = {**cost, "model": args.model, "device": torch.cuda.get_device_name() if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "torch": torch.__version__, "parameters_M": parameters / 1e6,
        f"gflops_per_clip_T{args.segments}": flops_train,
        f"gflops_per_video_T{args.test_segments}": flops_test,
        **speeds["eager"], **({"compiled": speeds["compiled"]} if args.compile else {}),
        "settings": vars(args)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
