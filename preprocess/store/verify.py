"""`teamnet verify`: read every chunk of every shard and check index.json against the shards.

Every chunk is read as the readers read it (chunks.Chunks: the size it decodes to, then
HDF5's fletcher32 checksum and decoding), after the shard's structure is checked
(layout.check_video: only its own chunked datasets, shapes, dtypes and attributes that
agree); comparing each
index entry with its shard group finds an index that no longer describes the data. Each
problem names the shard and, where there is one, the video.
"""
from pathlib import Path

import h5py
from tqdm import tqdm

from .chunks import Chunks
from .index import load_index
from .layout import SHARD_GLOB, STREAMS, UNREADABLE, StoreError, read_shard, short, video_group

_COMPARED = {"gops": "gops", "p_frames": "num_p", "width": "width", "height": "height",
             "frames": "frames"}  # index entry key: shard attribute


def _check_group(group, attributes, entry):
    """Problems of one (structurally checked) video group: its entry, then every chunk read."""
    num_p = [int(n) for n in attributes["num_p"]]
    found = {**attributes, "num_p": num_p}
    problems = [f"index.json says {key} {entry[key]}, the shard {found[name]}"
                for key, name in _COMPARED.items()
                if entry is not None and entry[key] != found[name]]
    for name in STREAMS:
        chunks = Chunks(group[name])
        for gop, count in enumerate(num_p):  # a chunk at a time: each is read and checked
            offsets = [(gop, 0, 0, 0)] if name == "iframes" else [
                (gop, slot, 0, 0, 0) for slot in range(count)]
            try:
                for offset in offsets:
                    chunks.read(offset)
            except UNREADABLE as error:
                problems.append(f"{name}, GOP {gop}: damaged ({short(error)})")
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
                found = _check_group(video_group(shard, attributes["group"]), attributes, entry)
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
