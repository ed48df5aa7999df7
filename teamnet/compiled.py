"""Regional compilation: the network's repeated pieces compiled one by one.

Compiling the whole three-branch graph at once did not finish in 180 s on an H200, and its
first training steps would wait for it every run. TEAM-Net is made of few distinct pieces
repeated many times (each branch's stem and residual blocks, the TEAM modules), so each is
compiled on its own, in place (nn.Module.compile: parameter names, checkpoints and DDP are
unchanged), and blocks of one kind and shape share one compiled graph. Inductor's caches keep
the compiled code across runs, in TORCHINDUCTOR_CACHE_DIR (default ~/.cache/teamnet/inductor):
a second run of the same model compiles in a fraction of the first one's time. A compiled
TEAM module computes its gates and applies them in a few fused kernels instead of about
twenty small element-wise ones (BENCHMARKS.md).
"""
import os
from pathlib import Path

import torch

CACHE = Path.home() / ".cache" / "teamnet" / "inductor"
RECOMPILES = 64  # graphs a piece may keep: block shapes x training and evaluation


def regions(model):
    """The pieces compiled one by one: every branch's stem and residual blocks, every TEAM
    module and every head."""
    for branch in model.branches.values():
        stem, *layers = branch.stages
        yield stem
        for layer in layers:
            yield from layer
    yield from model.teams.values()
    yield from model.heads.values()


def compile_regions(model, **options):
    """Compile model's regions in place (options: torch.compile's); returns model."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(CACHE))
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit,
                                                RECOMPILES)
    for region in regions(model):
        region.compile(**options)
    return model
