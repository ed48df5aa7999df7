"""index.json: every video of the complete shards, its class and label, and dataset totals.

The index is rebuilt from the shards themselves (never patched), at the end of every
extraction run or by `teamnet index` after `--part` jobs, so it never names a missing video.
"""
import json
from functools import lru_cache
from pathlib import Path

from ..atomic import write_json
from ..discover import strip_video_extension
from ..settings import FORMAT_VERSION
from ..text import csv_rows, kinetics_entries, one_class_each, quoted, ssv2_entries
from .layout import (INDEX_NAME, SHARD_GLOB, StoreError, check_settings, check_shard,
                     is_shard_name, read_shard, short)


def label_files(labels):
    """A labels argument (None, one path, or several) as a list of paths."""
    if labels is None:
        return []
    return [Path(labels)] if isinstance(labels, (str, Path)) else [Path(p) for p in labels]


def read_labels(path):
    """({video id: class}, {file name: class}) of an annotation file: a CSV of "video,class"
    rows, where video is the id or the relative path with any video extension (the first
    dict); or an official Kinetics CSV or Something-Something v2 JSON file, whose videos are
    known by file name only (the second)."""
    ssv2 = ssv2_entries(path)
    if ssv2 is not None:  # videos <id>.webm in one folder; test items carry no class
        return {}, one_class_each(path, [entry for entry in ssv2 if entry[2]])
    kinetics = kinetics_entries(path)
    if kinetics is not None:  # clips known by file name: a flat download, or one a class
        return {}, one_class_each(path, kinetics)
    entries = []
    for number, row in enumerate(csv_rows(path), 1):
        # every row is an entry (real names begin with '#'), but for a header
        if not row or (number == 1 and row[:2] == ["video", "class"]):
            continue
        if len(row) != 2:
            raise StoreError(f"{path}:{number}: expected 'video,class', got "
                             f"{quoted(','.join(row))}")
        entries.append((number, strip_video_extension(row[0].strip()), row[1].strip()))
    return one_class_each(path, entries), {}


def labels_for(video_ids, labels, strict=True):
    """{video_id: class} from one or several labels files (read_labels; the first file that
    names a video gives its class). strict: an id without a class is an error; else those
    are left out (a test set that no file labels)."""
    files = label_files(labels)
    found = [read_labels(path) for path in files]
    classes = {}
    for video_id in video_ids:
        name = Path(video_id).name
        for by_id, by_name in found:
            if video_id in by_id or name in by_name:
                classes[video_id] = by_id.get(video_id, by_name.get(name))
                break
    missing = [video_id for video_id in video_ids if video_id not in classes]
    if missing and strict:
        raise StoreError(f"{', '.join(map(str, files))}: no class for {len(missing)} "
                         f"video(s), such as {missing[0]!r}")
    return classes


def complete_shards(root, settings=None):
    """(settings, [(shard path, {video_id: attributes})]) of the complete shards in root.

    All must have been extracted with the same settings: `settings` (a dict as shards record
    it) when given, else the first shard's; and no video may be in two shards.
    """
    shards, seen, asked = [], {}, settings is not None
    for shard in sorted(Path(root).glob(SHARD_GLOB)):
        theirs, stored = read_shard(shard)
        if settings is not None and theirs != settings:
            raise StoreError(f"{shard} was extracted with settings {theirs}, "
                             f"{'this run asks for' if asked else 'other shards with'} "
                             f"{settings}; use the same options or another folder")
        settings = theirs
        for video_id in stored:
            if video_id in seen:
                raise StoreError(f"{video_id!r} is in both {seen[video_id]} and {shard.name}")
            seen[video_id] = shard.name
        shards.append((shard, stored))
    return settings, shards


def entry(video_id, attrs, shard, class_name, label):
    """A video's index entry, from its group's attributes (as layout.read_shard gives them)."""
    return {"id": video_id, "class": class_name, "label": label, "fps": float(attrs["fps"]),
            "width": int(attrs["width"]), "height": int(attrs["height"]),
            "frames": int(attrs["frames"]), "gops": int(attrs["gops"]),
            "p_frames": [int(n) for n in attrs["num_p"]], "shard": shard,
            "group": attrs["group"], "source": attrs["source"]}


def check_labels_kept(root, labels_file):
    """Refuse to index root without a labels file when its index was built with one: the
    classes would silently become the folders' (one class, in Kinetics' flat layout)."""
    path = Path(root) / INDEX_NAME
    try:
        before = json.loads(path.read_text(encoding="utf-8")).get("labels")
    except (OSError, ValueError, AttributeError):
        return  # no index, or one that will be rebuilt anyway
    before = [before] if isinstance(before, str) else before
    if not label_files(labels_file) and isinstance(before, list) and before:
        again = " ".join(f"--labels {path}" for path in before)
        raise StoreError(f"{path} took its classes from {', '.join(map(str, before))}: give "
                         f"{again} again (or other labels files); to use the folders' "
                         "classes instead, remove index.json first")


def build_index(root, labels_file=None):  # labels_file: one path, several, or None
    """Write root/index.json from all complete shards (of every part); returns the index.

    Classes come from labels_file (keys: video id, or its path with extension) or else from
    the video's folder name; label indices follow the sorted class names.
    """
    root = Path(root)
    settings, shards = complete_shards(root)
    stored = {video_id: (shard, attrs) for shard, videos in shards
              for video_id, attrs in videos.items()}
    classes_of = (labels_for(sorted(stored), labels_file) if labels_file else
                  {video_id: attrs["folder_class"] for video_id, (_, attrs) in stored.items()})
    classes = sorted(set(classes_of.values()))
    label_of = {name: label for label, name in enumerate(classes)}
    videos = [entry(video_id, attrs, shard.name, classes_of[video_id],
                    label_of[classes_of[video_id]])
              for video_id, (shard, attrs) in sorted(stored.items())]
    index = {"format_version": FORMAT_VERSION, "settings": settings, "classes": classes,
             "labels": [str(path.absolute()) for path in label_files(labels_file)] or None,
             "videos": videos}
    _check_index(root / INDEX_NAME, index)  # never write an index that loading would refuse
    write_json(root / INDEX_NAME, index)
    return load_index(root)


# What every index entry holds, and the type of each (checked on load: the index is a file
# that people edit, copy and damage, and it decides which files training opens).
_ENTRY = {"id": str, "class": str, "label": int, "fps": (int, float), "width": int,
          "height": int, "frames": int, "gops": int, "p_frames": list, "shard": str,
          "group": str, "source": str}


def _check_entry(video, classes):
    """The first thing wrong with one index entry, or None."""
    for key, kind in _ENTRY.items():
        if not isinstance(video.get(key), kind) or isinstance(video.get(key), bool):
            return f"{key!r} is missing or not {getattr(kind, '__name__', 'a number')}"
    if not is_shard_name(video["shard"]):
        return f"shard {video['shard']!r} is not a plain shard name (shard-NNNNN.h5) in the folder"
    if not 0 <= video["label"] < len(classes) or classes[video["label"]] != video["class"]:
        return f"label {video['label']} does not name class {video['class']!r}"
    if len(video["p_frames"]) != video["gops"] or not all(
            isinstance(n, int) and n >= 0 for n in video["p_frames"]):
        return f"p_frames must list one count >= 0 for each of its {video['gops']} GOPs"
    if min(video["width"], video["height"], video["frames"], video["gops"]) < 1:
        return "width, height, frames and gops must be positive"
    return None


def _check_index(path, index):
    rebuild = f"rebuild it with `teamnet index {path.parent}`"
    if not isinstance(index, dict) or index.get("format_version") != FORMAT_VERSION:
        version = index.get("format_version") if isinstance(index, dict) else None
        raise StoreError(f"{path}: format version {version}, this reader reads "
                         f"{FORMAT_VERSION}; re-run `teamnet extract` into a new folder")
    classes, videos = index.get("classes"), index.get("videos")
    if not isinstance(classes, list) or not isinstance(videos, list):
        raise StoreError(f"{path}: no list of classes or of videos; {rebuild}")
    try:
        if videos or index.get("settings") is not None:  # an empty dataset records none
            check_settings(index.get("settings"))
    except StoreError as error:
        raise StoreError(f"{path}: {error}; {rebuild}") from None
    seen = set()
    for number, video in enumerate(videos):
        name = video.get("id", f"#{number}") if isinstance(video, dict) else f"#{number}"
        problem = _check_entry(video, classes) if isinstance(video, dict) else "not an object"
        if problem is None and video["id"] in seen:
            problem = "listed twice"
        if problem:
            raise StoreError(f"{path}: video {name!r}: {problem}; {rebuild}")
        seen.add(video["id"])


@lru_cache(maxsize=8)
def _load_index(path, modified):
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StoreError(f"{path}: not valid JSON ({error.msg} at line {error.lineno} column "
                         f"{error.colno}); rebuild it with `teamnet index {path.parent}`") from None
    except (OSError, UnicodeDecodeError) as error:
        raise StoreError(f"{path}: unreadable ({short(error)})") from None
    _check_index(path, index)
    index["by_id"] = {video["id"]: video for video in index["videos"]}
    return index


def load_index(root):
    """The parsed index.json of an extracted dataset (cached until the file changes)."""
    path = Path(root).absolute() / INDEX_NAME
    if not path.is_file():
        raise StoreError(f"{path}: no index; is {root} the output folder of `teamnet extract`?")
    return _load_index(path, path.stat().st_mtime_ns)


def list_videos(root):
    """The ids of all videos in an extracted dataset, sorted."""
    return [video["id"] for video in load_index(root)["videos"]]


def _spread(values):
    """min, median and max of some counts (zeros where there are none)."""
    values = sorted(values) or [0]
    return {"min": values[0], "median": values[len(values) // 2], "max": values[-1]}


def summary(root):
    """Totals of an extracted dataset: videos, classes (and videos per class), shards, GOPs,
    frames, bytes; GOPs and stored P-frames per video; the videos without a P-frame."""
    root = Path(root)
    index = load_index(root)
    videos = index["videos"]
    shards = sorted({video["shard"] for video in videos})
    for shard in shards:
        check_shard(root / shard)
    size = sum((root / shard).stat().st_size for shard in shards)
    frames = sum(video["frames"] for video in videos)
    per_class = {name: 0 for name in index["classes"]}
    for video in videos:
        per_class[video["class"]] += 1
    p_frames = sorted(sum(video["p_frames"]) for video in videos)
    return {"videos": len(videos), "classes": len(index["classes"]), "shards": len(shards),
            "per_class": per_class,
            "without_p_frames": [v["id"] for v in videos if not any(v["p_frames"])],
            "gops_per_video": _spread([video["gops"] for video in videos]),
            "stored_p_frames_per_video": _spread(p_frames),
            "gops": sum(video["gops"] for video in videos), "frames": frames,
            "stored_p_frames": sum(sum(video["p_frames"]) for video in videos),
            "bytes": size, "bytes_per_frame": size / frames if frames else 0.0,
            "settings": index["settings"]}
