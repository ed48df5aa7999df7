"""Training: train_one_epoch, and run(config) which owns the run folder (issue: training).

The run folder holds config.json, metrics.jsonl (one line an epoch), TensorBoard events, and
the checkpoints last.pt and best.pt (best validation top-1, the validation set being held out
from the training list: the test list is never used to select). A resumed run restores model,
optimizer, schedule and every rank's random state, and the data order depends only on
(seed, epoch), so it continues exactly as an uninterrupted run would have.
"""
import json
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from preprocess.store import load_index

from . import checkpoint
from .config import TrainConfig
from .data import ClipDataset, make_loader
from .distributed import all_gather, barrier, setup
from .evaluate import check_classes, predict
from .metrics import accuracy_report
from .model import build_model, load_weights
from .splits import hold_out, read_list
from .transforms import normalise


def parameter_groups(model, weight_decay):
    """Weight decay on conv and linear weights only, not on BatchNorm parameters or biases."""
    decay, rest = [], []
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            is_weight = isinstance(module, (nn.Conv2d, nn.Linear)) and name == "weight"
            (decay if is_weight else rest).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def train_one_epoch(runner, model, loader, optimizer, context, autocast, clip_grad, epoch):
    """One pass over the loader: returns the epoch's metrics (mean loss over ranks, steps of
    every rank, clips/s, data-wait share)."""
    runner.train()
    total, steps, waited, start = torch.zeros((), device=context.device), 0, 0.0, time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", disable=not context.is_main,
               dynamic_ncols=True)
    ready = time.perf_counter()
    for clips, labels, _ in bar:
        waited += time.perf_counter() - ready
        inputs, labels = normalise(clips, context.device), labels.to(context.device)
        with autocast:
            loss = model.loss(runner(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        total += loss.detach()
        steps += 1
        if context.is_main and steps % 10 == 1:  # .item() waits for the GPU: not every step
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f"{total.item() / steps:.3f}",
                            clips_s=f"{steps * len(labels) * context.world_size / elapsed:.1f}",
                            data_wait=f"{waited / elapsed:.0%}", refresh=False)
        ready = time.perf_counter()
    elapsed = time.perf_counter() - start
    ranks = all_gather((total.item() / max(steps, 1), steps), context)
    return {"train_loss": sum(loss for loss, _ in ranks) / len(ranks),
            "steps_per_rank": [count for _, count in ranks],
            "clips_per_s": steps * loader.batch_size * context.world_size / elapsed,
            "data_wait": waited / elapsed}


def run(config, resume=False):
    """Train as configured (or continue the run in config.output); returns the last metrics."""
    output = Path(config.output)
    if resume:
        saved = checkpoint.load(output / "last.pt")
        config = TrainConfig.from_dict(saved["config"])
    context = setup(config.device)
    torch.manual_seed(config.seed + context.rank)  # ranks differ in dropout, not in init (DDP broadcasts)
    data = config.data
    index = load_index(data.data)
    if data.train_list:
        train = read_list(data.train_list, index, "train", data.list_format, data.split)
    else:  # every video, except those of the test list
        test = {v for v, _ in read_list(data.test_list, index, "test", data.list_format,
                                        data.split)} if data.test_list else set()
        train = [(v["id"], v["label"]) for v in index["videos"] if v["id"] not in test]
    train, validation = hold_out(train, data.val_fraction, config.seed)
    model = build_model(config.model, len(index["classes"]))
    if context.is_main:
        output.mkdir(parents=True, exist_ok=True)
        (output / "config.json").write_text(json.dumps(config.as_dict(), indent=1) + "\n")
        print(f"{len(train)} training and {len(validation)} validation videos, "
              f"{len(index['classes'])} classes -> {output}")
    if config.model.init_from and not resume:
        start = checkpoint.load(config.model.init_from)
        heads = load_weights(model, start["model"])
        if heads and context.is_main:
            print(f"{config.model.init_from}: {len(start['classes'])} classes -> "
                  f"{len(index['classes'])}: heads re-initialised ({', '.join(heads)})")
    cuda = context.device.type == "cuda"
    model = model.to(context.device, memory_format=torch.channels_last if cuda else torch.preserve_format)
    optimizer = torch.optim.SGD(parameter_groups(model, config.optim.weight_decay),
                                lr=config.optim.lr, momentum=config.optim.momentum)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.optim.lr_steps), 0.1)
    first_epoch, best, history = 0, -1.0, []
    if resume:
        check_classes(saved["classes"], index["classes"], output / "last.pt", data.data)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        first_epoch, best, history = saved["epoch"] + 1, saved["best_val_top1"], saved["history"]
        torch.set_rng_state(saved["rng"][context.rank])
        if context.is_main:  # the log as of the checkpoint, whatever a kill left after it
            (output / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in history))
    runner = model
    if context.world_size > 1:
        runner = nn.parallel.DistributedDataParallel(model, device_ids=[context.device] if cuda else None)
    runner = torch.compile(runner) if config.compile else runner
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()

    def loader(entries, train_mode):
        dataset = ClipDataset(data.data, entries, model.modalities, data.num_segments,
                              data.input_size, train_mode, config.seed)
        per_rank = max(1, data.batch_size // context.world_size)
        per_rank = min(per_rank, -(-len(dataset) // context.world_size))  # small datasets
        return make_loader(dataset, per_rank, data.workers, context.rank, context.world_size,
                           config.seed, train_mode, pin_memory=cuda)

    train_loader = loader(train, True)
    validation_loader = loader(validation, False) if validation else None
    writer = _tensorboard(output) if context.is_main else None
    metrics = {}
    for epoch in range(first_epoch, config.optim.epochs):
        train_loader.sampler.set_epoch(epoch)
        metrics = {"epoch": epoch, "lr": scheduler.get_last_lr()[0], **train_one_epoch(
            runner, model, train_loader, optimizer, context, autocast, config.optim.clip_grad, epoch)}
        scheduler.step()
        if validation_loader:
            logits, labels = predict(model, validation_loader, context, autocast)
            metrics["val_top1"] = accuracy_report(logits, labels, index["classes"])["top1"]
        rng = all_gather(torch.get_rng_state(), context)
        history.append(metrics)
        if context.is_main:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "epoch": epoch, "rng": rng,
                     "best_val_top1": max(best, metrics.get("val_top1", -1.0)),
                     "history": history, "config": config.as_dict(), "classes": index["classes"]}
            checkpoint.save(output / "last.pt", state)
            if metrics.get("val_top1", 0.0) > best or not validation_loader:
                checkpoint.save(output / "best.pt", state)
            _record(output, writer, metrics)
        best = max(best, metrics.get("val_top1", -1.0))
        barrier(context)
    return metrics


def _tensorboard(output):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional on minimal images
        return None
    return SummaryWriter(output / "tensorboard")


def _record(output, writer, metrics):
    with open(output / "metrics.jsonl", "a", encoding="utf-8") as file:
        file.write(json.dumps(metrics) + "\n")
    if writer:
        for key, value in metrics.items():
            if key != "epoch" and isinstance(value, (int, float)):
                writer.add_scalar(key, value, metrics["epoch"])
        writer.flush()
    summary = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                        if isinstance(v, float))
    print(f"epoch {metrics['epoch']}: {summary}")
