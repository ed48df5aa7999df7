"""What TEAM's gates cost: one TEAM module (c->s) at each of the paper's positions, eager and
compiled (teamnet/compiled.py's way: the module alone), against the floor of its memory
traffic (reading the three feature maps and writing them gated: one multiply each).

    python benchmarks/team_gates.py [--clips 2] [--segments 8] [--size 224] [--steps 10]

Shapes are those of TEAM-Net (ResNet-50 I-frames, ResNet-18 MVs and residuals) at --size for
--clips x --segments frames; forward only, float32 (bf16 on a GPU with --bf16).
"""
import argparse
import json
import time

import torch

from model_speed import timed
from teamnet.fusion import TEAM

# (I-frame, MV, residual) channels and the stride after each position (ResNet-50 / -18)
POSITIONS = {"stem": ((64, 64, 64), 4), "res2": ((256, 64, 64), 4),
             "res3": ((512, 128, 128), 8), "res4": ((1024, 256, 256), 16)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    seconds = lambda step: timed(step, args.steps, device)[1]  # noqa: E731
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    rows = {}
    for name, (channels, stride) in POSITIONS.items():
        side = args.size // stride
        features = [torch.randn(args.clips * args.segments, c, side, side, device=device,
                                dtype=dtype) for c in channels]
        team = TEAM(channels).to(device, dtype).eval()
        compiled = torch.compile(team)
        start = time.perf_counter()
        with torch.no_grad():
            compiled(*features)
        sync()
        compile_s = time.perf_counter() - start
        gates = [torch.rand(f.shape[0], f.shape[1], 1, 1, device=device, dtype=dtype)
                 for f in features]
        with torch.no_grad():
            eager = seconds(lambda: team(*features))
            fused = seconds(lambda: compiled(*features))
            floor = seconds(lambda: [f * g for f, g in zip(features, gates)])
        rows[name] = {"eager_ms": 1e3 * eager, "compiled_ms": 1e3 * fused,
                      "one_multiply_ms": 1e3 * floor, "compile_s": compile_s}
        print(f"{name}: eager {1e3 * eager:.2f} ms, compiled {1e3 * fused:.2f} ms, "
              f"one multiply {1e3 * floor:.2f} ms (compiled in {compile_s:.1f} s)")
    print(json.dumps({"device": str(device), "threads": torch.get_num_threads(),
                      "positions": rows, "settings": vars(args)}))


if __name__ == "__main__":
    main()
