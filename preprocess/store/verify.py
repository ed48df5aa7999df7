"""`teamnet verify`: read every chunk of every shard and check index.json against the shards.

HDF5's fletcher32 checksums (writer.py) make a damaged chunk fail to read, so reading every
chunk finds damage; comparing each index entry with its shard group finds an index that no
longer describes the data. Each problem names the shard and, where there is one, the video.
"""
from pathlib import Path

import h5py
from tqdm import tqdm

from .index import load_index
from .layout import UNREADABLE, SHARD_GLOB, StoreError, read_shard, short

STREAMS = ("iframes", "mvs", "residuals", "num_p")


def _check_group(group, entry):
    """Problems of one video's group: shapes against its entry, then every chunk read."""
    gops = len(group["num_p"])
    num_p = [int(n) for n in group["num_p"][()]]
    expected = {"gops": gops, "p_frames": num_p, "width": int(group["iframes"].shape[2]),
                "height": int(group["iframes"].shape[1]), "frames": int(group.attrs["frames"])}
    problems = [f"index.json says {key} {entry[key]}, the shard {value}"
                for key, value in expected.items() if entry is not None and entry[key] != value]
    for name in STREAMS:
        dataset = group[name]
        if len(dataset) != gops:
            problems.append(f"{name} has {len(dataset)} GOPs, num_p {gops}")
        if name != "num_p" and dataset.fletcher32 is False:
            problems.append(f"{name} carries no checksums (extracted by an older version)")
        for gop in range(len(dataset)):  # a GOP at a time: every chunk is read and checked
            try:
                dataset[gop]
            except UNREADABLE as error:
                problems.append(f"{name}, GOP {gop}: damaged ({short(error)})")
    if max(num_p, default=0) > group["mvs"].shape[1]:
        problems.append("num_p counts more P-frames than the datasets hold")
    return problems


def _check_shard(path, entries, settings):
    """[(video or None, problem)] for one shard file and the entries of index.json naming it."""
    try:
        theirs, stored = read_shard(path)
    except StoreError as error:
        return [(None, str(error).split(": ", 1)[1])]
    problems = [(video_id, "index.json names it; the shard does not hold it")
                for video_id in entries if video_id not in stored]
    if settings is not None and theirs != settings:
        problems.append((None, f"extracted with settings {theirs}, index.json says {settings}"))
    with h5py.File(path, "r") as shard:
        for video_id, attributes in stored.items():
            entry = entries.get(video_id)
            if entry is not None and entry["group"] != attributes["group"]:
                problems.append((video_id, f"index.json says group {entry['group']}, the shard "
                                           f"{attributes['group']}"))
            if video_id not in entries:
                problems.append((video_id, "stored but not in index.json (`teamnet index` "
                                           "rebuilds it)"))
            try:
                found = _check_group(shard["videos"][attributes["group"]], entry)
            except UNREADABLE as error:
                found = [f"damaged ({short(error)})"]
            problems += [(video_id, problem) for problem in found]
    return problems


def verify(root, progress=True):
    """Every problem of an extracted dataset as (file, video or None, problem); [] if sound.
    Also returns the number of shards and videos checked."""
    root = Path(root)
    problems = []
    try:
        index = load_index(root)
        settings, videos = index["settings"], index["videos"]
    except StoreError as error:
        problems.append(("index.json", None, str(error)))
        settings, videos = None, []
    shards = sorted({p.name for p in root.glob(SHARD_GLOB)} | {v["shard"] for v in videos})
    for name in tqdm(shards, desc="verify", unit="shard", disable=not progress):
        entries = {v["id"]: v for v in videos if v["shard"] == name}
        if not (root / name).is_file():
            problems += [(name, video_id, "index.json names this shard; it does not exist")
                         for video_id in entries]
            continue
        problems += [(name, video, problem)
                     for video, problem in _check_shard(root / name, entries, settings)]
    return problems, len(shards), len(videos)
