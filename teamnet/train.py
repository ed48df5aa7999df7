"""Training: train_one_epoch, and run(config) which owns the run folder.

The run folder holds config.json, metrics.jsonl (one line an epoch), TensorBoard events, and
the checkpoints last.pt and best.pt (best validation top-1, the validation set being held out
from the training list: the test list is never used to select). A resumed run restores model,
optimizer, schedule and every rank's random state, and the data order depends only on
(seed, epoch), so it continues exactly as an uninterrupted run would have.
"""
import dataclasses
import json
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import torch
from torch import nn

from preprocess.atomic import atomic_output, remove_partials, write_json
from preprocess.errors import SettingsError
from preprocess.lock import folder_lock
from preprocess.store import load_index
from preprocess.text import plural

from . import checkpoint
from .backbone import weights_name
from .compiled import compile_regions
from .config import PIXELS, branch_rates, uses_adam
from .data import ClipDataset, make_loader, stop_workers, with_p_frames
from .distributed import all_gather, barrier, setup, use_cores
from .evaluate import check_classes, predict
from .memory import check_step_memory
from .metrics import accuracy_report
from .model import IN_CHANNELS, build_model, load_weights
from .pictures import PictureError, learning_curves
from .progress import EpochLog
from .splits import SplitError, hold_out, read_flip_pairs, read_list, read_split_record
from .transforms import normalise


CURVES = "curves.png"


def parameter_groups(model, weight_decay, lr, head_lr_mult=None, pretrained=False):
    """SGD parameter groups (TEAM-Net's recipe): weight decay on conv and linear weights only,
    not on BatchNorm parameters or biases; the classifier heads (new for every dataset) at lr
    x head_lr_mult, or where that is None as the reference: x5 for their weights and x10 for
    their biases when the backbones are pretrained, x1 when they start from scratch (where x5
    made the loss spike on the motion set: BENCHMARKS.md)."""
    groups = {}
    for module_name, module in model.named_modules():
        head = module_name.startswith("heads.")
        for name, parameter in module.named_parameters(recurse=False):
            is_weight = isinstance(module, (nn.Conv2d, nn.Linear)) and name == "weight"
            scale = 1.0
            if head:
                scale = head_lr_mult if head_lr_mult is not None else (
                    (5.0 if is_weight else 10.0) if pretrained else 1.0)
            groups.setdefault((is_weight, scale), []).append(parameter)
    return [{"params": params, "weight_decay": weight_decay if is_weight else 0.0,
             "lr": lr * scale} for (is_weight, scale), params in sorted(groups.items())]


def coviar_groups(model, weight_decay, lr=None, rates=None):
    """Adam parameter groups of the official CoViAR code: each branch at its own rate (lr, or
    where that is None rates' for its modality: a recipe's branch_rates, by default
    UCF-101's), its classifier at that rate, the
    first convolution, BatchNorm and input BatchNorm of the MV and residual branches at 1/10
    of it, the rest of the (pretrained) backbone at 1/100; weight decay on all but biases."""
    groups = {}
    for name, parameter in model.named_parameters():
        part, modality, rest = name.split(".", 2)
        if part == "heads":
            scale = 1.0
        elif modality not in PIXELS and rest.startswith(("input_norm.", "stages.0.0.",
                                                       "stages.0.1.")):
            scale = 0.1
        else:
            scale = 0.01
        base = (rates or branch_rates("coviar"))[modality] if lr is None else lr
        decays = not name.endswith("bias")
        groups.setdefault((decays, base * scale), []).append(parameter)
    return [{"params": params, "weight_decay": weight_decay if decays else 0.0, "lr": rate}
            for (decays, rate), params in sorted(groups.items())]


def make_optimizer(model, config):
    """The optimizer of config's recipe (TrainConfig.optim.recipe)."""
    optim = config.optim
    if uses_adam(optim.recipe):
        return torch.optim.Adam(coviar_groups(model, optim.weight_decay, optim.lr,
                                              branch_rates(optim.recipe)), eps=1e-3)
    pretrained = config.model.pretrained != "none" or bool(config.model.init_from)
    return torch.optim.SGD(parameter_groups(model, optim.weight_decay, optim.lr,
                                            optim.head_lr_mult, pretrained),
                           lr=optim.lr, momentum=optim.momentum)


def train_one_epoch(model, wrapped, loader, optimizer, context, clip_grad, epoch):
    """One pass over the loader (or the epoch's batches from epoch_batches). `model` is the
    network, `wrapped` what runs it (DDP and/or torch.compile around model, or model itself).
    Returns the epoch's metrics: mean loss over ranks, top-1 of the training clips as they
    were seen (augmented, dropout on, the weights moving: torchvision's references report
    the same), steps of every rank, clips/s, data-wait share, seconds to the first batch and
    in all."""
    wrapped.train()
    log = EpochLog(loader, f"epoch {epoch}", context)
    for clips, labels, _ in log:
        inputs = normalise(clips, context.device)
        labels = labels.to(context.device, non_blocking=True)
        with context.autocast():
            outputs = wrapped(inputs)
            loss = model.loss(outputs, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model, clip_grad)
        optimizer.step()
        log.add(loss, len(labels), (outputs["logits"].argmax(dim=1) == labels).sum())
    ranks = all_gather((log.mean_loss(), log.steps, log.correct.item(), log.clips), context)
    return {"train_loss": sum(loss for loss, *_ in ranks) / len(ranks),
            "train_top1": sum(r[2] for r in ranks) / max(1, sum(r[3] for r in ranks)),
            "steps_per_rank": [steps for _, steps, *_ in ranks], **log.rates()}


def clip_gradients(model, max_norm):
    """Clip the gradient norm of each of the model's gradient groups to max_norm (0: off):
    all parameters together, or each CoViAR branch on its own (SegmentNet.gradient_groups)."""
    if max_norm:
        for parameters in model.gradient_groups():
            nn.utils.clip_grad_norm_(parameters, max_norm)


def epoch_batches(loader, epoch):
    """The batches of a training epoch, to iterate over once. With loader workers they start
    on them now, so that an epoch asked for early (before the last one's validation) does not
    begin with every worker making a whole batch while the GPU waits (BENCHMARKS.md: about
    2 s an epoch on an H200). Workers are persistent: only the first call draws from torch's
    random state (their base seed), just before the first epoch as ever, so a resumed run
    stays exact. Without workers nothing is loaded ahead."""
    loader.sampler.set_epoch(epoch)
    return iter(loader) if loader.num_workers else loader


def split_record(train, validation, classes):
    """What split.json holds: each part's videos as {"id", "class"}, so that anyone can audit
    the labels a run trained with."""
    return {part: [{"id": video, "class": classes[label]} for video, label in entries]
            for part, entries in (("train", train), ("validation", validation))}


def _saved_split(saved, index, data):
    """(train, validation) of a run's split.json, every video still in the dataset with the
    class it had (an id alone: split.json of an earlier version)."""
    split = read_split_record(saved)
    parts = []
    for part in ("train", "validation"):
        entries = []
        for video, recorded in split[part]:
            found = index["by_id"].get(video)
            if found is None or recorded not in (None, found["class"]):
                now = "is no longer in" if found is None else f"is {found['class']!r} in"
                raise SplitError(f"{saved}: {part} video {video!r} {now} {data} (the run "
                                 f"trained on it{f' as {recorded!r}' if recorded else ''}); "
                                 "restore the dataset the run was trained on, or start a new "
                                 "run in another --output")
            entries.append((video, found["label"]))
        parts.append(entries)
    return tuple(parts)


def training_videos(data, index, seed, output=None, report=None, missing=None,
                    needs_p_frames=True):
    """(train, validation) entries: the training list (default: every video not in the test
    list), with data.val_fraction of each class held out for validation, whole groups at a
    time (splits.hold_out). A run keeps its split: output/split.json, once written, is read
    back (a resumed run trains on exactly the videos it started with). report: as read_list's;
    missing: a list given the listed videos the data lack (data.missing "skip"). Videos
    without a P-frame are left out, counted, for models that read P-frames."""
    saved = Path(output) / "split.json" if output else None
    if saved and saved.is_file():
        return _saved_split(saved, index, data.data)
    read = lambda path, role: read_list(path, index, role, data.list_format,  # noqa: E731
                                        data.split, report, data.missing, missing,
                                        data.class_index)
    if data.train_list:
        train = read(data.train_list, "train")
    else:
        test = {video for video, _ in read(data.test_list, "test")} if data.test_list else set()
        train = [(v["id"], v["label"]) for v in index["videos"] if v["id"] not in test]
    return hold_out(with_p_frames(train, index, needs_p_frames, report),
                    data.val_fraction, seed, data.group_pattern)


def run(config, resume=False, given=()):
    """Train as configured, or continue the run in config.output (resume: `given` names the
    options given with it, which may extend the run; see TrainConfig.resumed). Returns the
    config that ran and whether any epoch was left to train. The run folder is locked while
    it runs (preprocess/lock.py)."""
    output = Path(config.output)
    saved = checkpoint.load(output / "last.pt") if resume else None
    if resume:
        config = checkpoint.trained_config(saved, output / "last.pt").resumed(
            config, given, saved["epoch"] + 1)
    config, context = _set_up(config)
    say = print if context.is_main else None
    index = load_index(config.data.data)
    missing = []
    train, validation = training_videos(config.data, index, config.seed,
                                        output if resume else None, say, missing,
                                        config.model.uses_p_frames())
    _check_flip_pairs(config.data, index["classes"], say)
    model, start = _new_model(config.model, len(index["classes"]), resume, context)
    check_step_memory(config, len(index["classes"]), rank_batch(config, len(train), context),
                      sample_bytes(model.modalities, index["settings"]["storage"]), context,
                      context.local_world_size)
    with ExitStack() as held:
        if context.is_main:
            held.enter_context(folder_lock(output))
            _open_run_folder(config, output, resume, (train, validation), index, missing)
        if start:
            _initialise(model, start, config.model.init_from, index, context, output)
        cuda = context.device.type == "cuda"
        model = model.to(context.device,
                         memory_format=torch.channels_last if cuda else torch.preserve_format)
        optimizer = make_optimizer(model, config)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.optim.lr_steps),
                                                         0.1)
        state = {"epoch": -1, "best_val_top1": -1.0, "history": []}
        if resume:
            check_classes(saved["classes"], index["classes"], output / "last.pt",
                          config.data.data)
            state = _restore(saved, model, optimizer, scheduler, context, output, config)
        done = state["epoch"] + 1  # epochs trained, numbered from 0
        if resume:
            _say_where(output, done, config.optim.epochs, say)
        if done >= config.optim.epochs:
            return config, False
        wrapped = model
        if context.world_size > 1:
            wrapped = nn.parallel.DistributedDataParallel(
                model, device_ids=[context.device] if cuda else None)
        if config.compile:  # in place, piece by piece (teamnet/compiled.py)
            compile_regions(model)
        state = _train_epochs(config, model, wrapped, (train, validation), optimizer,
                              scheduler, state, context, index)
    if say:
        epoch, score = best_epoch(state["history"])
        say(f"best.pt is epoch {epoch} " + (f"(validation top-1 {score:.2%})" if score is not
                                            None else "(no validation set: the last epoch)"))
    return config, True


def _set_up(config):
    """(config fitted to this machine, the rank's Context): devices, ranks, seeds, threads."""
    context = setup(config.device)
    check_batch_split(config.data.batch_size, context.world_size)
    config = fit_to_machine(config, context)
    if context.is_main:
        print(f"{context.device.type}: {config.data.workers} loader worker(s) a rank"
              + (f", {torch.get_num_threads()} torch thread(s)"
                 if context.device.type == "cpu" else ""))
    torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest kernels once
    # ranks differ in dropout, not in initialisation (DDP broadcasts the weights)
    torch.manual_seed(config.seed + context.rank)
    return config, context


def _check_flip_pairs(data, classes, say):
    """Refuse --flip-pairs that cannot apply, before anything is written; say how many do."""
    if data.flip_pairs and data.flip == "off":
        raise SettingsError("--flip-pairs names the classes a flipped clip changes into, and "
                            "--flip off flips no clip: give --flip on with it, or leave it out")
    if data.flip_pairs:
        read_flip_pairs(data.flip_pairs, classes, say)


def _open_run_folder(config, output, resume, split, index, missing):
    """The locked run folder made ready: what a killed run was writing removed; a new run
    never starts over an earlier one; its record (config, split, missing videos) written."""
    remove_partials(output)  # checkpoints a killed run was writing
    if not resume and (output / "last.pt").exists():
        raise checkpoint.CheckpointError(
            f"{output} already holds a run (last.pt): --resume continues it; to start "
            "over, choose another --output or remove that one")
    _write_run_record(config, output, split, index["classes"], missing)


def _say_where(output, done, epochs, say):
    """A resumed run says how far it is."""
    if say:
        say(f"{output}: {done} of {epochs} epochs trained" + (
            f"; resuming at epoch {done}" if done < epochs else
            "; nothing to do (a larger --epochs continues it)"))


def fit_to_machine(config, context):
    """config with the loader workers it leaves to the machine set (None: the cores each
    rank of this machine has, at most 8); on a CPU, torch's threads set to those cores
    (distributed.use_cores)."""
    cores = use_cores(context)
    if config.data.workers is not None:
        return config
    return dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                workers=min(8, cores)))


def check_batch_split(batch_size, world_size):
    """Refuse a global batch the ranks cannot share equally: each rank would take the floor
    of its share, and the run would train with a smaller batch than it records."""
    if batch_size % world_size:
        lower = batch_size // world_size * world_size
        choices = " or ".join(str(b) for b in (lower, lower + world_size) if b)
        raise SettingsError(f"--batch-size {batch_size} does not split evenly over "
                            f"{world_size} ranks ({batch_size / world_size:g} clips each): "
                            f"give a multiple of {world_size}, such as {choices}")


def rank_batch(config, videos, context):
    """Clips a step on each rank: the global batch split over the ranks, and no more than a
    rank's share of the videos (small datasets)."""
    per_rank = max(1, config.data.batch_size // context.world_size)
    return min(per_rank, -(-videos // context.world_size))


def sample_bytes(modalities, storage):
    """Bytes of one frame position of a clip as the loader hands it over: uint8 RGB
    I-frames, MVs and residuals as stored (int8 or int16)."""
    width = 2 if storage == "int16" else 1
    return sum(IN_CHANNELS[m] * (1 if m in PIXELS else width) for m in modalities)


def _train_epochs(config, model, wrapped, videos, optimizer, scheduler, state, context, index):
    """Epochs from the one after state["epoch"] to the last; checkpoints and metrics each.
    Returns the state after the last."""
    output, (train, validation) = Path(config.output), videos
    train_loader = _loader(config, train, model.modalities, context, train_mode=True)
    validation_loader = _loader(config, validation, model.modalities, context, False) if validation else None
    writer = _tensorboard(output) if context.is_main else None
    epochs = range(state["epoch"] + 1, config.optim.epochs)
    batches = epoch_batches(train_loader, epochs.start) if epochs else None
    for epoch in epochs:
        metrics = {"epoch": epoch, "lr": scheduler.get_last_lr()[0], **train_one_epoch(
            model, wrapped, batches, optimizer, context, config.optim.clip_grad, epoch)}
        if epoch + 1 in epochs:  # the loader workers start on it during validation and saving
            batches = epoch_batches(train_loader, epoch + 1)
        scheduler.step()
        if validation_loader:
            logits, labels = predict(model, validation_loader, context)
            metrics["val_top1"] = accuracy_report(logits, labels, index["classes"])["top1"]
            metrics["val_loss"] = validation_loss(logits, labels)
        # ties go to the later epoch: further along the schedule, and never an early epoch
        # that happened to reach a saturated validation score first
        improved = metrics.get("val_top1", 0.0) >= state["best_val_top1"] or not validation_loader
        state = {"epoch": epoch, "history": [*state["history"], metrics],
                 "best_val_top1": max(state["best_val_top1"], metrics.get("val_top1", -1.0))}
        rng = {"rng": all_gather(torch.get_rng_state(), context),
               "cuda_rng": all_gather(torch.cuda.get_rng_state(context.device), context)
               if context.device.type == "cuda" else None}
        if context.is_main:
            _save(output, state, improved, model, optimizer, scheduler, rng, config, index)
            _record(output, writer, metrics, state["history"])
        barrier(context)
    for loader in (train_loader, validation_loader):
        stop_workers(loader)
    return state


def validation_loss(logits, labels):
    """Cross-entropy of the videos' fused scores (the logits evaluation ranks by)."""
    return float(nn.functional.cross_entropy(torch.as_tensor(logits), torch.as_tensor(labels)))


def best_epoch(history):
    """(epoch, its validation top-1 or None) of the epoch best.pt holds: the last of the best
    validation scores (ties go to the later epoch), or the last epoch without validation."""
    scored = [m for m in history if "val_top1" in m]
    if not scored:
        return history[-1]["epoch"], None
    best = max(m["val_top1"] for m in scored)
    return [m["epoch"] for m in scored if m["val_top1"] == best][-1], best


def _write_run_record(config, output, split, classes, missing):
    """What a run folder says of the run before its first step: config.json, split.json
    and, where listed videos are absent, missing.txt."""
    train, validation = split
    (output / "config.json").write_text(json.dumps(config.as_dict(), indent=1) + "\n")
    write_json(output / "split.json", split_record(train, validation, classes))
    if missing:  # listed, never downloaded (Kinetics): for anyone to fetch or audit
        with atomic_output(output / "missing.txt") as temporary:
            temporary.write_text("".join(f"{video}\n" for video in missing))
        print(f"{len(missing):,} listed video(s) are not in {config.data.data}: "
              f"skipped, listed in {output / 'missing.txt'}")
    print(f"{len(train)} training and {len(validation)} validation videos, "
          f"{plural(len(classes), 'class')} -> {output}")


def _new_model(model_config, classes, resume, context):
    """(the network, the --init-from checkpoint or None), made before anything is written:
    weights that cannot be had stop the run here. A run started from a checkpoint takes
    every weight from it (nothing fetched); a resumed one from its last.pt, later."""
    start = starting_point(model_config) if model_config.init_from and not resume else None
    model = build_model(dataclasses.replace(model_config, pretrained="none") if start
                        else model_config, classes, initialise=not resume)
    if context.is_main and not resume and model_config.pretrained != "none" and not start:
        print("initial weights: " + ", ".join(
            f"{m} {weights_name(model_config.pretrained, model.branches[m].arch)}"
            for m in model.modalities))
    return model, start


ARCHITECTURE = ("model", "modality", "iframe_arch", "pframe_arch", "team_positions",
                "team_arrangement", "temporal_shift")  # what a checkpoint's weights must fit


def starting_point(model_config):
    """The checkpoint --init-from names, loaded and checked against the run's architecture
    before anything is written: a mismatch is one line naming both."""
    path = model_config.init_from
    start = checkpoint.load(path)
    theirs = checkpoint.trained_config(start, path).model
    differ = [f"{name} {getattr(theirs, name)!r} there, {getattr(model_config, name)!r} here"
              for name in ARCHITECTURE if getattr(theirs, name) != getattr(model_config, name)]
    if differ:
        raise checkpoint.CheckpointError(
            f"--init-from {path} is another network ({'; '.join(differ)}): give the same "
            "options as it was trained with, or start from another checkpoint")
    return start


def _initialise(model, start, path, index, context, output):
    """Weights from another run's checkpoint: its heads only where its classes are this
    run's, by name and order; recorded in init_from.json."""
    keep = list(start["classes"]) == list(index["classes"])
    fresh = load_weights(model, start["model"], keep_heads=keep)
    if context.is_main:
        print(f"{path}: weights loaded; " + (
            "its classes are this run's: heads kept" if keep else
            f"its {len(start['classes'])} classes are not this run's "
            f"{len(index['classes'])}: heads new ({len(fresh)} parameters)"))
        write_json(output / "init_from.json", {
            "checkpoint": str(Path(path).absolute()), "classes": list(start["classes"]),
            "loaded": sorted({name.split(".")[0] for name in start["model"]
                              if name.split(".")[0] != "heads"} | ({"heads"} if keep else set())),
            "fresh": fresh})


def _restore(saved, model, optimizer, scheduler, context, output, config):
    """Put a run back as last.pt left it; returns the run's state (epoch, best, history)."""
    checkpoint.load_model_state(model, saved["model"], output / "last.pt")
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    scheduler.milestones = Counter(config.optim.lr_steps)  # a resumed run may add later steps
    torch.set_rng_state(saved["rng"][context.rank])
    if saved.get("cuda_rng") and context.device.type == "cuda":
        torch.cuda.set_rng_state(saved["cuda_rng"][context.rank], context.device)
    if context.is_main:  # the log as of the checkpoint, whatever a kill left after it
        (output / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in saved["history"]))
    return {key: saved[key] for key in ("epoch", "best_val_top1", "history")}


def _loader(config, entries, modalities, context, train_mode):
    data = config.data
    pairs = data.flip_pairs and read_flip_pairs(data.flip_pairs, load_index(data.data)["classes"])
    dataset = ClipDataset(data.data, entries, modalities, data.num_segments, data.input_size,
                          train_mode, config.seed, flip=data.flip == "on", flip_pairs=pairs,
                          crop_scales=data.crop_scales, augment=data.augment,
                          apart=config.branches_apart())
    return make_loader(dataset, rank_batch(config, len(dataset), context), data.workers, context.rank, context.world_size,
                       config.seed, train_mode, pin_memory=context.device.type == "cuda")


def _save(output, state, improved, model, optimizer, scheduler, rng, config, index):
    """last.pt after every epoch; best.pt too when validation improved (or without one).
    rng: every rank's CPU (and CUDA) random state, for an exact resume."""
    whole = {**state, **rng, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "config": config.as_dict(),
             "classes": index["classes"], "data_settings": index["settings"]}
    checkpoint.save(output / "last.pt", whole)
    if improved:
        checkpoint.save_as(output / "best.pt", output / "last.pt")


def _tensorboard(output):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional on minimal images
        return None
    return SummaryWriter(output / "tensorboard")


def _record(output, writer, metrics, history):
    """An epoch's metrics into metrics.jsonl, TensorBoard and the console, and the run's
    learning curves (curves.png) redrawn."""
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
    try:
        learning_curves(history, output / CURVES, best_epoch(history)[0])
    except PictureError as error:  # a picture never costs the run
        print(f"warning: {error}")
