"""Per-video score files (`teamnet evaluate --scores FILE`) and their late fusion
(`teamnet fuse`), the way the official CoViAR code combines its three models.

A score file is a NumPy .npz archive of plain arrays (never pickled objects: it is read with
allow_pickle=False): "videos" (ids), "labels" (class numbers), "classes" (names),
"logits_fused" and "logits_<modality>" for each branch (float32, videos x classes), and
"about", a JSON text: the checkpoint, the list and the protocol it was evaluated with.
docs/FORMAT.md describes it.
"""
import json
import zipfile
from pathlib import Path

import numpy as np

from preprocess.atomic import atomic_output
from preprocess.errors import SettingsError

from .config import INPUTS
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


# what a score file may hold, and the kind of each array ("U" text, "i" integers, "f" floats)
KINDS = {"videos": "U", "labels": "i", "classes": "U", "about": "U",
         **{f"logits_{name}": "f" for name in ("fused", *INPUTS)}}
MAX_ARRAY_BYTES = 1 << 31  # a logits array of 10 million videos x 50 classes


def _declared(path, archive):
    """{name: (shape, dtype)} of the arrays of an open archive, from their headers alone,
    each checked against what a score file holds and against the bytes behind it: nothing
    is decompressed beyond a header before everything is known to be small and right."""
    declared = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name not in KINDS or name in declared or not info.filename.endswith(".npy"):
            raise ScoreFileError(f"{path}: holds {info.filename!r}, which a score file of "
                                 "`teamnet evaluate --scores` does not")
        if info.file_size > MAX_ARRAY_BYTES:
            raise ScoreFileError(f"{path}: {name} would take {info.file_size:,} bytes, more "
                                 f"than a score file's {MAX_ARRAY_BYTES:,}")
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            header_of = {(1, 0): np.lib.format.read_array_header_1_0,
                         (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if header_of is None:
                raise ValueError(f"{name}: .npy format {version}")
            shape, _, dtype = header_of(member)
            header = member.tell()
        if dtype.kind != KINDS[name] or dtype.hasobject:
            raise ScoreFileError(f"{path}: {name} holds {dtype} values, not "
                                 f"{ {'U': 'text', 'i': 'integers', 'f': 'numbers'}[KINDS[name]] }")
        if header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != info.file_size:
            raise ScoreFileError(f"{path}: {name} declares shape {shape}, which its "
                                 f"{info.file_size:,} bytes do not hold")
        declared[name] = shape
    return declared


def read(path):
    """{"videos", "labels", "classes", "logits": {name: (V, K)}, "about"} of a score file,
    every array checked (names, kinds, shapes, sizes) before it is loaded, and its contents
    after: distinct videos, labels among the classes, finite logits."""
    try:
        with zipfile.ZipFile(path) as archive:
            shapes = _declared(path, archive)
        missing = {"videos", "labels", "classes", "about"} - set(shapes)
        if missing or not any(name.startswith("logits_") for name in shapes):
            raise ScoreFileError(f"{path}: lacks {', '.join(sorted(missing)) or 'logits'}")
        videos, classes = shapes["videos"], shapes["classes"]
        if len(videos) != 1 or len(classes) != 1 or shapes["labels"] != videos or shapes[
                "about"] != () or any(shape != (videos[0], classes[0]) for name, shape
                                      in shapes.items() if name.startswith("logits_")):
            raise ScoreFileError(f"{path}: its arrays do not fit one another "
                                 f"({', '.join(f'{n} {s}' for n, s in shapes.items())})")
        with np.load(path, allow_pickle=False) as archive:
            found = {name: archive[name] for name in archive.files}
        about = json.loads(str(found.pop("about")))
    except ScoreFileError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ScoreFileError(f"{path}: not a score file of `teamnet evaluate --scores` "
                             f"({type(error).__name__}: {error})") from None
    scores = {"videos": [str(v) for v in found.pop("videos")], "labels": found.pop("labels"),
              "classes": [str(c) for c in found.pop("classes")], "about": about,
              "logits": {name.removeprefix("logits_"): values
                         for name, values in found.items() if name.startswith("logits_")}}
    _check_values(path, scores)
    return scores


def _check_values(path, scores):
    seen = {}
    for row, video in enumerate(scores["videos"]):
        if video in seen:
            raise ScoreFileError(f"{path}: video {video!r} is scored twice (rows {seen[video]} "
                                 f"and {row}); a score file holds each video once")
        seen[video] = row
    labels, count = scores["labels"], len(scores["classes"])
    bad = np.flatnonzero((labels < 0) | (labels >= count))
    if len(bad):
        raise ScoreFileError(f"{path}: video {scores['videos'][bad[0]]!r} has label "
                             f"{labels[bad[0]]}, not a class number 0-{count - 1}")
    for name, values in scores["logits"].items():
        if not np.isfinite(values).all():
            raise ScoreFileError(f"{path}: logits_{name} holds values that are not finite")
    if not isinstance(scores["about"], dict):
        raise ScoreFileError(f"{path}: its about is not a JSON object")


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
    if not all(np.isfinite(weights)):
        raise ScoreFileError(f"--weights {','.join(map(str, weights))}: every weight must be a "
                             "finite number")
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
