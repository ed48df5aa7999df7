"""Scores of single videos under a checkpoint, with the evaluation protocol (centre GOP of
each segment, its 5th P-frame, centre crop or --crops), through the code `teamnet evaluate`
runs: the same clips, the same model call, so the same numbers.

The videos come extracted in memory (preprocess/in_memory.py, which the command line calls:
this package never imports the decoder) as an index and open files, as a dataset would.
"""
from pathlib import Path

import torch

from preprocess.store import StoreError, load_index

from . import checkpoint
from .cam import check_cam_class, write_cam_pictures
from .checkpoint import CheckpointError
from .data import ClipDataset, make_loader
from .distributed import setup, use_cores
from .evaluate import predict
from .model import build_model
from .sampling import sample_clip


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


class Predictor:
    """A checkpoint's model, ready to score one video at a time."""

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

    def __call__(self, index, files, name):
        """Class probabilities (K,) of the one video of an in-memory index ({"settings",
        "by_id"}, files {shard name: open h5py.File}); with config.cam, also its CAM
        picture, named after `name`. Returns (probabilities, picture path or None, [warning]:
        a picture that could not be written costs no scores)."""
        (video_id,) = index["by_id"]
        dataset = ClipDataset(None, [(video_id, 0)], self.model.modalities,
                              self.config.num_segments, self.input_size, train=False,
                              crops=self.config.crops, index=index, files=files)
        loader = make_loader(dataset, 1, 0, train=False)
        logits, _ = predict(self.model, loader, self.context)
        probabilities = probabilities_of(logits)[0]
        written, problems = [], []
        if self.config.cam:
            written, problems = write_cam_pictures(self.model, dataset, self.context, [name],
                                                   self.classes, Path(self.config.cam),
                                                   self.config.cam_class)
        return probabilities, (written or [None])[0], problems

    def gops_to_keep(self, num_p):
        """The GOPs a video's clip is made of, given its stored P-frame counts: all that
        `represent` (preprocess/in_memory.py) needs to keep. The clip of the kept GOPs alone
        is the same clip: with at least T usable GOPs the T centre ones are distinct, and a
        clip of T segments over exactly T GOPs takes each once; with fewer, every usable GOP
        is taken."""
        needs_p_frames = bool({"mv", "residual"} & set(self.model.modalities))
        try:
            gops, _ = sample_clip(num_p, self.config.num_segments, needs_p_frames, None,
                                  self.data_settings["p_stride"])
        except ValueError:  # no GOP to sample: ClipDataset names the problem
            return None
        return set(gops.tolist())

    def top(self, probabilities):
        """[(class, probability)] of the config's top-k classes, most probable first."""
        order = probabilities.argsort()[::-1][:self.config.top_k]
        return [(self.classes[k], float(probabilities[k])) for k in order]


def probabilities_of(logits):
    """Softmax of logits (V, K) as NumPy float64: what predict prints, for every video."""
    return torch.from_numpy(logits).double().softmax(dim=1).numpy()
