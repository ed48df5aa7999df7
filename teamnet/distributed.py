"""DDP setup from torchrun's environment; one process without torchrun works the same."""
import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from preprocess.machine import usable_cores


@dataclass(frozen=True)
class Context:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    local_world_size: int = 1  # ranks on this machine, sharing its cores and memory

    @property
    def is_main(self):
        return self.rank == 0

    def autocast(self):
        """bf16 autocast on GPUs (bf16 needs no GradScaler), plain fp32 on CPUs."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()


def setup(device="auto"):
    """Read RANK, LOCAL_RANK, WORLD_SIZE; choose the device before init_process_group
    (nccl on GPUs, gloo on CPUs); return the process's context."""
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device, local_rank) if device == "cuda" else torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    return Context(rank, local_rank, world_size, device, local_world_size)


def use_cores(context):
    """The cores each rank on this machine has (those the process may use, shared by the
    ranks here); on a CPU, torch's intra-op threads are set to them unless OMP_NUM_THREADS
    says otherwise: by itself torch takes every core of the host, whatever a container's
    quota or the other ranks here, and threads that fight for cores slow every step."""
    cores = max(1, usable_cores() // context.local_world_size)
    if context.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(cores)
    return cores


def all_gather(obj, context):
    """Every rank's obj, as a list in rank order (just [obj] without DDP)."""
    if context.world_size == 1:
        return [obj]
    gathered = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(context):
    if context.world_size > 1:
        dist.barrier()


def cleanup(finished=True):
    """Leave the process group: every rank together once the work finished (a barrier, then
    destroy_process_group), else not at all. A rank that failed alone must not wait for the
    others, which may be blocked in a collective it will never join: it exits, and torchrun
    stops the rest (tearing the group down then can itself block: pytorch/pytorch#75097)."""
    if dist.is_initialized() and finished:
        dist.barrier()
        dist.destroy_process_group()
