"""Per-video score files (`teamnet evaluate --scores FILE`) and their late fusion
(`teamnet fuse`), the way the official CoViAR code combines its three models.

A score file is a NumPy .npz archive of plain arrays (never pickled objects: it is read with
allow_pickle=False): "videos" (ids), "labels" (class numbers), "classes" (names),
"logits_fused" and "logits_<modality>" for each branch (float32, videos x classes), and
"about", a JSON text: the checkpoint, the list and the protocol it was evaluated with.
docs/FORMAT.md describes it.
"""
import json
from pathlib import Path

import numpy as np

from preprocess.atomic import atomic_output
from preprocess.errors import SettingsError

from .metrics import accuracy_report

FORMAT_VERSION = 1


class ScoreFileError(SettingsError):
    """A score file that cannot be read or fused with the others."""


def write(path, videos, labels, classes, logits, about):
    """Write a score file whole or not at all. logits: {"fused" or a modality: (V, K)}."""
    arrays = {f"logits_{name}": np.asarray(values, np.float32) for name, values in logits.items()}
    with atomic_output(path) as temporary, open(temporary, "wb") as file:
        np.savez(file, videos=np.array(videos, dtype=str), labels=np.asarray(labels, np.int64),
                 classes=np.array(classes, dtype=str),
                 about=np.array(json.dumps({"format_version": FORMAT_VERSION, **about})),
                 **arrays)


def read(path):
    """{"videos", "labels", "classes", "logits": {name: (V, K)}, "about"} of a score file."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            found = {name: archive[name] for name in archive.files}
        about = json.loads(str(found.pop("about")))
        scores = {"videos": [str(v) for v in found.pop("videos")], "labels": found.pop("labels"),
                  "classes": [str(c) for c in found.pop("classes")], "about": about,
                  "logits": {name.removeprefix("logits_"): values
                             for name, values in found.items() if name.startswith("logits_")}}
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise ScoreFileError(f"{path}: not a score file of `teamnet evaluate --scores` "
                             f"({type(error).__name__}: {error})") from None
    shapes = {values.shape for values in scores["logits"].values()}
    if shapes != {(len(scores["videos"]), len(scores["classes"]))} or len(
            scores["labels"]) != len(scores["videos"]):
        raise ScoreFileError(f"{path}: its arrays do not fit one another (logits {shapes}, "
                             f"{len(scores['videos'])} videos, {len(scores['classes'])} classes)")
    return scores


def fuse(paths, weights=None, branch="fused"):
    """Late fusion of score files: the weighted sum of their logits (the official CoViAR
    combine: raw scores, weights 2:1:1 for its I-frame, MV and residual models).

    Files are grouped by the videos they hold, in the order given (the three splits of
    UCF-101, say, each evaluated by every model); the i-th file of each group takes
    weights[i] (default: 1 each). Returns {"groups": [{"files", "report"}], "mean": {top1,
    top5, mean_class_accuracy} over the groups}."""
    files = [(Path(path), read(path)) for path in paths]
    groups = {}
    for path, scores in files:
        groups.setdefault(tuple(sorted(scores["videos"])), []).append((path, scores))
    sizes = {len(group) for group in groups.values()}
    if len(sizes) != 1:
        raise ScoreFileError("every list must be scored by the same number of files: "
                             + "; ".join(f"{len(g)} file(s) ({', '.join(str(p) for p, _ in g)})"
                                         for g in groups.values()))
    count = sizes.pop()
    weights = list(weights) if weights else [1.0] * count
    if len(weights) != count:
        raise ScoreFileError(f"{len(weights)} weight(s) for {count} file(s) a list")
    classes = files[0][1]["classes"]
    results = []
    for group in groups.values():
        order = group[0][1]["videos"]
        total, labels = 0.0, None
        for (path, scores), weight in zip(group, weights):
            if scores["classes"] != classes:
                raise ScoreFileError(f"{path}: other classes than {files[0][0]}'s")
            if branch not in scores["logits"]:
                raise ScoreFileError(f"{path} has no {branch!r} logits (it has "
                                     f"{', '.join(scores['logits'])})")
            rows = {video: i for i, video in enumerate(scores["videos"])}
            take = [rows[video] for video in order]
            if labels is not None and (scores["labels"][take] != labels).any():
                raise ScoreFileError(f"{path} labels some videos otherwise than "
                                     f"{group[0][0]}")
            labels = scores["labels"][take]
            total = total + weight * scores["logits"][branch][take].astype(np.float64)
        report = accuracy_report(total, labels, classes)
        results.append({"files": [str(path) for path, _ in group], "report": report})
    keys = ("top1", "top5", "mean_class_accuracy")
    mean = {key: float(np.mean([r["report"][key] for r in results])) for key in keys}
    return {"groups": results, "weights": weights, "branch": branch, "mean": mean}
