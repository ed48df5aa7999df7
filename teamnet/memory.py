"""How much memory a training step takes, found before the first step.

The activations autograd keeps for the backward pass dominate, and they follow from the model
and the input shapes alone: the model runs once on the "meta" device (shapes, no data, no
arithmetic; well under a second) and every tensor saved for backward is counted. Weights,
their gradients and SGD's momentum, and the loader's batches in flight are added. Checked
against measured peaks in tests/test_everyday.py (within a third, above or below).

On a CPU, a step that does not fit is refused before anything is written: the kernel's
out-of-memory killer would otherwise end the run without a word, after minutes of swapping.
"""
import dataclasses

import torch

from preprocess.errors import SettingsError
from preprocess.machine import available_memory

from .config import uses_adam
from .model import IN_CHANNELS, build_model

GIB = 2**30
RUNTIME = 0.5 * GIB  # the Python process, torch and its libraries (measured: 0.2-0.5 GiB)
WORKER = 64 * 2**20  # a loader worker's own memory, batches aside (measured: 50-60 MiB)
PREFETCH = 4  # batches each loader worker keeps ready (teamnet.data.make_loader)
BACKWARD = 1.1  # gradients of activations live beside them during backward (measured)


def saved_activation_bytes(model_config, num_classes, batch, segments, size):
    """(bytes of the tensors autograd saves in one forward pass of `batch` clips, the
    weights aside; bytes of the weights)."""
    config = dataclasses.replace(model_config, pretrained="none", init_from=None)
    saved = {}

    def keep(tensor):
        saved[id(tensor)] = tensor  # held, so that an id is never reused in this pass
        return tensor
    with torch.device("meta"):
        model = build_model(config, num_classes, initialise=False)
        inputs = {m: torch.empty(batch, segments, IN_CHANNELS[m], size, size)
                  for m in model.modalities}
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
            model.loss(model(inputs), torch.zeros(batch, dtype=torch.long))
    weights = {id(p) for p in model.parameters()}  # saved too (convolutions), held anyway
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    return sum(t.numel() * t.element_size() for key, t in saved.items()
               if key not in weights), parameters


def step_memory(config, num_classes, batch, sample_bytes):
    """{part: bytes} of one rank's training step: activations, model (weights, gradients and
    the optimizer's state: SGD's momentum or Adam's two moments), loader (its workers and their
    batches), runtime, and their total. batch: the rank's clips per step; sample_bytes: bytes
    of one stored frame position (all modalities)."""
    data = config.data
    activations, parameters = saved_activation_bytes(config.model, num_classes, batch,
                                                     data.num_segments, data.input_size)
    clip = data.num_segments * data.input_size ** 2 * sample_bytes
    states = 2 if uses_adam(config.optim.recipe) else 1  # Adam's moments, SGD's momentum
    parts = {"activations": int(activations * BACKWARD), "model": (2 + states) * parameters,
             "loader": data.workers * (WORKER + (PREFETCH + 1) * batch * clip),
             "runtime": int(RUNTIME)}
    return {**parts, "total": sum(parts.values())}


def _gib(count):
    return f"{count / GIB:.1f} GiB"


# What a step must leave free beyond its estimate: the estimate is within a third of measured
# steps, and a shared machine's free memory moves while a run starts (a run estimated at 20.4
# GiB, started with 21 GiB free, filled a 23 GiB machine)
MARGIN = 0.15
SPARE = 1 * GIB


def with_margin(total):
    """Bytes a step of `total` estimated bytes is given room for."""
    return int(total * (1 + MARGIN) + SPARE)


def fitting_batch(need, batch, workers, have):
    """The most clips a rank can take a step within `have` bytes, margin included, from the
    estimate `need` of a step of `batch` clips (activations and loader batches grow with the
    clips; weights, the runtime and the workers' own memory do not)."""
    per_clip = max(1, (need["activations"] + need["loader"] - workers * WORKER) // batch)
    fixed = need["model"] + need["runtime"] + workers * WORKER
    room = (have - SPARE) / (1 + MARGIN) - fixed
    return max(0, int(room // per_clip))


def check_step_memory(config, num_classes, batch, sample_bytes, context, ranks_here):
    """Say what a step needs against what the device has (main rank), and on a CPU refuse a
    step that will not fit with the margin (every rank: each must stop, not wait for the
    others), naming the batch size that fits and the options that shrink it. ranks_here:
    ranks sharing this machine's memory."""
    need = step_memory(config, num_classes, batch, sample_bytes)
    workers = config.data.workers
    if context.device.type == "cuda":
        have = torch.cuda.mem_get_info(context.device)[0]
        where = f"free on {torch.cuda.get_device_name(context.device)}"
    else:
        have = available_memory()
        have = have // ranks_here if have is not None else None
        where = "available" + (f" to each of {ranks_here} ranks here" if ranks_here > 1 else "")
    if context.is_main:
        parts = ", ".join(f"{name} {_gib(need[name])}" for name in
                          ("activations", "model", "loader", "runtime"))
        print(f"memory: about {_gib(need['total'])} a step ({parts}, with {workers} loader "
              f"worker(s); {batch} clips a rank), {_gib(with_margin(need['total']))} with a "
              f"margin of {MARGIN:.0%} and {_gib(SPARE)}"
              + (f", of {_gib(have)} {where}" if have is not None else ""))
    if have is None or with_margin(need["total"]) <= have:
        return need
    fits = fitting_batch(need, batch, workers, have)
    shrink = ("make clips smaller (--input-size, --num-segments, --iframe-arch resnet18) or "
              "use fewer --workers")
    most = fits * context.world_size
    advice = (f"--batch-size {most}{' or less' if most > 1 else ''} fits with it; or {shrink}"
              if fits else f"not one clip a step fits with it: {shrink}")
    message = (f"a training step needs about {_gib(need['total'])} ("
               f"{_gib(with_margin(need['total']))} with a margin of {MARGIN:.0%} and "
               f"{_gib(SPARE)}) and {_gib(have)} are {where}. {advice}. The defaults are the "
               "paper's GPU settings (batch 80 over 8 GPUs, 224 px, 8 segments, ResNet-50).")
    if context.device.type == "cuda":
        if context.is_main:  # cuda's own caching and bf16 make the estimate rougher: a warning
            print(f"warning: {message}")
        return need
    if not config.no_memory_check:
        raise SettingsError(f"{message} --no-memory-check trains regardless.")
    if context.is_main:
        print(f"warning: {message}")
    return need
