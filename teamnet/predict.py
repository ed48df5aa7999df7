"""Scores of videos under a checkpoint, with the evaluation protocol (centre GOP of each
segment, its 5th P-frame, centre crop or --crops), through the code `teamnet evaluate` runs:
the same clips, the same model call, so the same numbers.

Clips are made by workers (FileClips: video files, each represented in memory by a function
the command line gives, preprocess/in_memory.py, since this package never imports the
decoder; StoredClips: the videos of an extracted dataset), in parallel processes or on a Dask
cluster, while this process scores them several videos a step (score_all); each result is
handed over as soon as it is made.
"""
import os
from dataclasses import dataclass

import numpy as np
import torch

from preprocess.errors import TeamnetError
from preprocess.machine import usable_cores
from preprocess.store import StoreError, load_index

from . import checkpoint
from .cam import check_cam_class, write_cam_pictures
from .checkpoint import CheckpointError
from .compiled import compile_regions, recompiling
from .data import ClipDataset
from .distributed import setup, use_cores
from .evaluate import clip_logits
from .model import build_model
from .sampling import eval_frames_read, sample_clip


def data_settings(saved, trained, path):
    """How the checkpoint's data was encoded and extracted: recorded in the checkpoint, or
    (older checkpoints) in the index of the dataset it was trained on."""
    settings = saved.get("data_settings")
    if settings is None:
        try:
            settings = load_index(trained.data.data)["settings"]
        except StoreError:
            settings = None
    if not settings or not settings.get("encode"):
        raise CheckpointError(f"{path} does not record how its videos were encoded, and its "
                              f"dataset {trained.data.data} does not either: train it again on "
                              "a dataset extracted by this version from `teamnet encode` output")
    return settings


@dataclass(frozen=True)
class ClipMaker:
    """The evaluation clip of one video, as the checkpoint's model takes it: small and free
    of the model, so that loader processes carry it."""
    modalities: tuple
    segments: int
    input_size: int
    crops: int
    p_stride: int

    @property
    def needs_p_frames(self):
        return bool({"mv", "residual"} & set(self.modalities))

    @property
    def frames_read(self):
        """The frames of each GOP, from its I-frame on, that a clip reads (sampling.py)."""
        return eval_frames_read(self.p_stride, self.needs_p_frames or "rgb" in self.modalities)

    def dataset(self, root, video_ids, index=None, files=None):
        """An evaluation ClipDataset of these videos (labels unknown: 0)."""
        return ClipDataset(root, [(video, 0) for video in video_ids], self.modalities,
                           self.segments, self.input_size, train=False, crops=self.crops,
                           index=index, files=files)

    def item(self, dataset, i):
        """(clip {modality: (T x crops, S, S, C)}, GOP of each segment) of item i."""
        clip, _, _ = dataset[(0, i)]
        gops, _ = sample_clip(dataset.num_p[i], self.segments, self.needs_p_frames)
        return clip, gops

    def __call__(self, index, files):
        """The clip and GOPs of the one video of an in-memory index ({"settings",
        "by_id"}) whose shard is open in files."""
        return self.item(self.dataset(None, list(index["by_id"]), index, files), 0)

    def gops_to_keep(self, num_p):
        """The GOPs a video's clip is made of, given its stored P-frame counts: all that a
        represent function (preprocess/in_memory.py) needs to keep. The clip of the kept GOPs
        alone is the same clip: with at least T usable GOPs the T centre ones are distinct,
        and a clip of T segments over exactly T GOPs takes each once; with fewer, every
        usable GOP is taken."""
        try:
            gops, _ = sample_clip(num_p, self.segments, self.needs_p_frames, None,
                                  self.p_stride)
        except ValueError:  # no GOP to sample: ClipDataset names the problem
            return None
        return set(gops.tolist())


def failure(error):
    """What a result line says of a video that failed: the message of an error the user can
    act on, or, for anything else (a bug), its kind as well."""
    known = isinstance(error, (TeamnetError, OSError))
    return str(error) if known else f"internal error: {error!r}"


class FileClips:
    """What a worker needs to make the clip of a video file, or of a part of one: called
    with a task (i, path, span), it returns {"i", "clip", "gops"} or, for one that failed,
    {"i", "error"} (one bad file costs only itself). represent(path, choose=, span=, reads=)
    gives an in-memory (h5py file, index) of a file (span None) or of its part (start,
    seconds), keeping the GOPs choose(P-frame counts) names, each up to the frames a clip
    reads. Small and picklable: sent with each task
    to local processes or a Dask cluster's workers."""

    def __init__(self, represent, make):
        self.represent, self.make = represent, make

    def __call__(self, task):
        i, path, span = task
        try:
            file, index = self.represent(path, choose=self.make.gops_to_keep, span=span,
                                         reads=self.make.frames_read)
            with file:
                (entry,) = index["by_id"].values()
                clip, gops = self.make(index, {entry["shard"]: file})
            return {"i": i, "clip": clip, "gops": gops, "decoded": index.get("decoded")}
        except Exception as error:  # noqa: BLE001 - reported with the video, never lost
            return {"i": i, "error": failure(error)}


class StoredClips:
    """As FileClips, for the videos of an extracted dataset: tasks (i, video id)."""

    def __init__(self, root, make):
        self.root, self.make = root, make

    def __call__(self, task):
        i, video = task
        try:
            clip, gops = self.make.item(self.make.dataset(self.root, [video]), 0)
            return {"i": i, "clip": clip, "gops": gops}
        except Exception as error:  # noqa: BLE001
            return {"i": i, "error": failure(error)}


class Predictor:
    """A checkpoint's model, ready to score clips made by its ClipMaker (self.make)."""

    def __init__(self, config):
        self.config = config
        saved = checkpoint.load(config.checkpoint)
        trained = checkpoint.trained_config(saved, config.checkpoint)
        self.classes = list(saved["classes"])
        check_cam_class(config.cam_class, self.classes, config.checkpoint)
        self.data_settings = data_settings(saved, trained, config.checkpoint)
        self.input_size = trained.data.input_size
        self.context = setup(config.device)
        use_cores(self.context)
        self.model = build_model(trained.model, len(self.classes), initialise=False)
        checkpoint.load_model_state(self.model, saved["model"], config.checkpoint)
        self.model.to(self.context.device).eval()
        if config.compile:
            compile_regions(self.model)
        self.make = ClipMaker(self.model.modalities, config.num_segments, self.input_size,
                              config.crops, self.data_settings["p_stride"])

    def leave_cores(self, workers):
        """On a CPU, score with the cores that `workers` local processes making clips leave
        (at least one), unless OMP_NUM_THREADS says otherwise: torch's threads would take
        every core, and the workers' decoders and encoders, one thread each, would wait."""
        if self.context.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(max(1, usable_cores() - workers))

    def score(self, clips):
        """Class probabilities (N, K), float64, of clips made by self.make, in one step."""
        batch = {m: torch.stack([clip[m] for clip in clips]) for m in self.model.modalities}
        with torch.no_grad():
            logits = recompiling(lambda: clip_logits(self.model, batch, self.config.crops,
                                                     self.context))
        return probabilities_of(logits.cpu().numpy())

    def pictures(self, name, clip, gops):
        """The CAM picture of one video (config.cam): (path or None, [warning])."""
        written, problems = write_cam_pictures(
            self.model, [(name, clip, gops)], self.config.crops, self.context, self.classes,
            self.config.cam, self.config.cam_class)
        return (written or [None])[0], problems

    def top(self, probabilities):
        """[(class, probability)] of the config's top-k classes, most probable first."""
        order = probabilities.argsort()[::-1][:self.config.top_k]
        return [(self.classes[k], float(probabilities[k])) for k in order]


def score_all(predictor, items, batch_size):
    """Yield (i, probabilities (K,) or None, item) for every item ({"i", "clip", "gops"} or
    {"i", "error"}, as FileClips and StoredClips make them, in any order) as soon as it is
    scored: batch_size clips a step, the last step with those left."""
    waiting = []

    def scored():
        probabilities = predictor.score([item["clip"] for item in waiting])
        done = [(item["i"], p, item) for item, p in zip(waiting, probabilities)]
        waiting.clear()
        return done

    for item in items:
        if "error" in item:
            yield item["i"], None, item
            continue
        waiting.append(item)
        if len(waiting) >= batch_size:
            yield from scored()
    if waiting:
        yield from scored()


def probabilities_of(logits):
    """Softmax of logits (V, K) as NumPy float64: what predict prints, for every video."""
    return torch.from_numpy(np.asarray(logits)).double().softmax(dim=1).numpy()
