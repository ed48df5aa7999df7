"""Clips from the HDF5 shards: a dataset of (video, label) and a DDP-aware sampler.

Randomness of a sample comes from (seed, epoch, index) alone, so a clip is the same whichever
rank or loader worker draws it, and a resumed run sees exactly the data an uninterrupted one
would. Shard files are opened lazily inside each worker, never before fork.
"""
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from preprocess.store import ClipReader, check_shard, load_index

from .sampling import OFFICIAL_VIEWS, official_test_clip, sample_clip
from .splits import SplitError
from .transforms import (apply_crop, default_scales, eval_crops, jitter_colours, train_crop,
                         view_size)


def with_p_frames(entries, index, needed, report=None):
    """entries less the videos without a P-frame (a one-frame download), where the model
    reads P-frames: counted, the first named, through report."""
    if not needed:
        return list(entries)
    kept = [entry for entry in entries if any(index["by_id"][entry[0]]["p_frames"])]
    left = [video for video, _ in entries if not any(index["by_id"][video]["p_frames"])]
    if left and report:
        report(f"{len(left)} video(s) without a P-frame left out, such as {left[0]!r}")
    if entries and not kept:
        raise SplitError(f"none of the {len(entries)} video(s) has a P-frame, such as "
                         f"{left[0]!r}: use an I-frame-only model, or other videos")
    return kept


def decoded_frames(reader, video, gops, positions):
    """The decoded RGB frames (T, H, W, 3) uint8 at positions of gops (0: the GOP's I-frame,
    j + 1: its stored P-frame j), rebuilt from what the shards hold (int16 storage). MVs and
    residuals are read for the P-frame positions alone."""
    gops, positions = np.asarray(gops), np.asarray(positions)
    frames = reader.read(video, gops, positions, ("iframe",))["iframe"]
    moving = positions > 0
    if moving.any():
        stored = reader.read(video, gops[moving], positions[moving] - 1, ("mv", "residual"))
        frames[moving] = p_frames(frames[moving], stored["mv"], stored["residual"])
    return frames


def p_frames(iframes, mvs, residuals):
    """P-frames (T, H, W, 3) uint8 rebuilt exactly: F(p) = R(p) + I(p - MV(p)), the residual
    plus the I-frame pixel its accumulated motion traces it to (docs/REPRESENTATION.md
    sections 3-4)."""
    count, height, width = iframes.shape[:3]
    # the traced pixel of every pixel as one flat index into the clip's I-frames: one take,
    # five times faster than indexing with three arrays
    rows = np.arange(count)[:, None, None] * height + np.arange(height)[:, None] - mvs[..., 1]
    traced = np.take(iframes.reshape(-1, 3), (rows * width + (np.arange(width) - mvs[..., 0]))
                     .ravel(), axis=0).reshape(iframes.shape).astype(np.int16)
    traced += residuals
    return traced.astype(np.uint8)  # in [0, 255]: a decoded frame


def check_official_view(view, crops, clips, p_stride, modalities, root):
    """Refuse a test view the data or the model cannot give as its official code does."""
    if view == "coviar" and crops == 3:
        raise SplitError("--view coviar has 1 or 10 crops (the official CoViAR test)")
    if view in OFFICIAL_VIEWS and p_stride != 1:
        raise SplitError(f"{root}: --view {view} reads P-frames at any position of a GOP, as "
                         f"the official test does; these data keep every {p_stride}th: "
                         "extract them again with --p-stride 1")
    if view in OFFICIAL_VIEWS and "rgb" in modalities:
        raise SplitError(f"--view {view} is the official test of a compressed-domain model; "
                         "an RGB model (TSN) is tested with --view tsn")
    if clips != 1 and view != "team-net":
        raise SplitError(f"--clips {clips}: only --view team-net draws clips that differ "
                         "(its official test); other views take the same frames every time")


class ClipDataset(Dataset):
    """Items are clips: {"iframe": uint8, "mv": int8/16, "residual": int8/16} tensors of shape
    (T, size, size, C), channels last, for the modalities asked for (T x crops in evaluation),
    and the label; transforms.normalise makes network inputs of them. index and files: read
    those instead of root's (store.ClipReader; one process only, workers=0)."""

    def __init__(self, root, entries, modalities, segments, input_size, train, seed=0, crops=1,
                 flip=True, flip_pairs=None, index=None, files=None, crop_scales=None,
                 view="tsn", clips=1, augment="tsn", apart=False):
        self.root, self.entries = root, list(entries)
        self.modalities, self.segments, self.input_size = tuple(modalities), segments, input_size
        self.train, self.seed, self.crops = train, seed, crops
        # training flips (with p = 0.5); a flipped clip of a class in flip_pairs ({label:
        # label}, both ways) takes the paired class: "swiping left" flipped is "swiping right"
        self.flip, self.flip_pairs = flip, flip_pairs or {}
        self.crop_scales = crop_scales or default_scales(self.modalities)
        # the official CoViAR code's augmentation (transforms.train_crop, jitter_colours) and,
        # apart: a crop and flip of each modality's own, at its own scales unless given
        self.augment, self.apart, self.given_scales = augment, apart, crop_scales
        # the evaluation crops (transforms.eval_crops) and, for the official views, frames
        # (sampling.official_test_clip); clips: how many clips a video, each of them crops
        # (only the team-net view draws clips that differ)
        self.view, self.clips = view, clips
        self.views = crops * clips  # network passes a video, averaged (evaluate.clip_logits)
        self.output_size = input_size if train else view_size(view, input_size)
        self.index, self.files = index, files  # None: the reader loads root's (cached)
        index = index or load_index(root)
        self.p_stride = index["settings"]["p_stride"]
        if "rgb" in self.modalities and index["settings"]["storage"] != "int16":
            raise SplitError(f"{root}: RGB frames are rebuilt from the I-frame, MV and residual "
                             "(docs/REPRESENTATION.md section 4), which needs them unsaturated: "
                             f"this dataset stores {index['settings']['storage']}; extract it "
                             "again with --storage int16")
        self.needs_p_frames = bool({"mv", "residual"} & set(self.modalities))
        if not train:
            check_official_view(view, crops, clips, self.p_stride, self.modalities, root)
        self.num_p = [np.asarray(index["by_id"][video]["p_frames"]) for video, _ in self.entries]
        if self.needs_p_frames:
            empty = [v for (v, _), n in zip(self.entries, self.num_p) if not n.any()]
            if empty:
                still = index["by_id"][empty[0]]["frames"] == 1
                raise SplitError(f"{len(empty)} video(s) have no P-frame, such as {empty[0]!r}"
                                 + (" (a still image: one frame, no motion)" if still else "")
                                 + ": remove them from the list, or use an I-frame-only model")
        self.sizes = [(index["by_id"][v]["height"], index["by_id"][v]["width"])
                      for v, _ in self.entries]
        shards = {index["by_id"][v]["shard"] for v, _ in self.entries} - set(files or ())
        for shard in sorted(shards):
            check_shard(Path(root) / shard)  # here, named, rather than in a worker mid-epoch
        self.reader = None

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, key):
        epoch, i = key  # from EpochSampler
        if self.reader is None:
            self.reader = ClipReader(self.root, index=self.index, files=self.files)
        video, label = self.entries[i]
        rng = np.random.default_rng((self.seed, epoch, i)) if self.train else None
        clips = [self.clip_frames(i, video, rng if self.train else self.test_rng(clip, i))
                 for clip in range(self.clips)]
        crops = self.clip_crops(i, rng)
        if self.train and crops[self.modalities[0]][0].flip:
            label = self.flip_pairs.get(label, label)
        if self.train and self.augment == "coviar" and "iframe" in self.modalities:
            clips[0]["iframe"] = jitter_colours(clips[0]["iframe"], rng)
        parts = {m: [] for m in self.modalities}
        for frames in clips:
            for m in self.modalities:
                parts[m] += [apply_crop(frames[m], crop, self.output_size, is_mv=m == "mv")
                             for crop in crops[m]]
        return ({m: torch.cat(part).permute(0, 2, 3, 1).contiguous()  # no copy
                 for m, part in parts.items()}, label, i)

    def clip_frames(self, i, video, rng):
        """{modality: (T, h, w, C) frames} of one clip of item i, as stored."""
        gops, slots = self.clip_positions(i, rng)
        if "rgb" in self.modalities:  # positions: 0 the I-frame, j + 1 stored P-frame j
            return {"rgb": decoded_frames(self.reader, video, gops, slots)}
        return self.reader.read(video, gops, slots, self.modalities)

    def clip_positions(self, i, rng):
        """(gops, slots) of one clip of item i (rng: a training draw, or test_rng's: None
        but for the team-net view)."""
        if not self.train and self.view in OFFICIAL_VIEWS:
            return official_test_clip(self.view, self.num_p[i], self.segments,
                                      self.needs_p_frames, rng)
        return sample_clip(self.num_p[i], self.segments, self.needs_p_frames, rng,
                           self.p_stride, frames="rgb" in self.modalities)

    def test_rng(self, clip, i):
        """The draws of test clip `clip` of item i under the team-net view: from (seed, clip,
        video), so that a test is the same on any number of ranks and loader workers."""
        return np.random.default_rng((self.seed, clip, i)) if self.view == "team-net" else None

    def clip_crops(self, i, rng):
        """{modality: crops} of item i: one random crop (training) or the evaluation crops,
        the same for every modality, so that the inputs stay aligned; in training with apart,
        one of each modality's own (the official CoViAR models, trained apart; what that
        would cost TEAM-Net: benchmarks/independent_crops.py)."""
        if not self.train:
            return dict.fromkeys(self.modalities, eval_crops(*self.sizes[i], self.crops,
                                                             self.view))
        anywhere = self.augment == "coviar"
        if self.apart:
            return {m: [train_crop(*self.sizes[i], rng, self.flip, self.given_scales or
                                   default_scales((m,)), anywhere)] for m in self.modalities}
        return dict.fromkeys(self.modalities, [train_crop(*self.sizes[i], rng, self.flip,
                                                          self.crop_scales, anywhere)])


class EpochSampler(Sampler):
    """Yields (epoch, index): reshuffled each epoch from (seed, epoch), padded by repetition to
    a multiple of the world size, and split across ranks (then across loader workers by the
    DataLoader), so every rank gets the same number of items."""

    def __init__(self, size, rank=0, world_size=1, shuffle=True, seed=0):
        if size < world_size:
            raise SplitError(f"{size} videos cannot be split across {world_size} ranks")
        self.size, self.rank, self.world_size = size, rank, world_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return -(-self.size // self.world_size)

    def __iter__(self):
        order = (np.random.default_rng((self.seed, self.epoch)).permutation(self.size)
                 if self.shuffle else np.arange(self.size))
        order = np.resize(order, len(self) * self.world_size)  # pads with the first items
        return iter([(self.epoch, int(i)) for i in order[self.rank::self.world_size]])


def make_loader(dataset, batch_size, workers, rank=0, world_size=1, seed=0, train=True,
                pin_memory=False):
    """A DataLoader over EpochSampler. It draws its workers' base seed from a generator of
    its own (seeded from seed, rank and train): from torch's global one, each loader's first
    iter() (and, without workers, every one) would move the random state dropout uses, so a
    resumed run, whose loaders start afresh, would draw other dropout masks than the run it
    continues (measured: issue "extended run diverges")."""
    sampler = EpochSampler(len(dataset), rank, world_size, shuffle=train, seed=seed)
    generator = torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, rank, int(train)]).generate_state(1)[0]))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory, drop_last=train, persistent_workers=workers > 0,
                      prefetch_factor=4 if workers > 0 else None, generator=generator)


def stop_workers(loader):
    """Stop a loader's persistent worker processes now rather than whenever the loader is
    garbage collected (a reference cycle can keep it for a while): forked children hold what
    the parent had open, the run folder's lock (flock) included, so a run that returned
    would still block the next one in the same process."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    if loader is not None:
        loader._iterator = None
