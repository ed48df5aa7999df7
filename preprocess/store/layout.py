"""What is where in an extracted dataset folder: shard and index names, a shard's record.

A shard is a file anyone can hand us, so nothing in it is trusted before it is checked
(check_video, check_settings): it may hold only its own chunked datasets, of the shapes,
dtypes and filters extract writes, agreeing with each other and with the video's attributes.
HDF5 would otherwise follow external links, external raw storage and virtual datasets into
any file, and size its reads by whatever a header declares.
"""
import itertools
import json
import math
import re
from pathlib import Path

import h5py
import numpy as np

from ..errors import TeamnetError
from ..settings import COMPRESSIONS, FORMAT_VERSION, MAX_SIDE, MIN_SIDE, STORAGES
from .chunks import COMPRESSORS, FLETCHER32, Chunks, pipeline

INDEX_NAME = "index.json"
SHARD_GLOB = "shard-*.h5"
_SHARD_NAME = re.compile(r"shard-(?:(\d{3})of(\d{3})-)?(\d{5})\.h5")


class StoreError(TeamnetError):
    """A dataset folder that cannot be read or written as asked; the message says why."""


def shard_prefix(part=None):
    """What the names of a part's shards begin with: shard-, or shard-002of008- (part 2/8)."""
    return "shard-" if part is None else f"shard-{part[0]:03d}of{part[1]:03d}-"


def shard_name(number, part=None):
    """shard-00042.h5, or shard-002of008-00042.h5 for part 2 of 8 (parts never collide)."""
    return f"{shard_prefix(part)}{number:05d}.h5"


def is_shard_name(name):
    """A plain shard name as extract writes them (no folder, nothing else)."""
    return isinstance(name, str) and _SHARD_NAME.fullmatch(name) is not None


def short(error):
    """The first line of a library's error message, for a one-line report."""
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__


def next_shard_number(names, part=None):
    """The first free shard number of a part, given the shard names that exist."""
    mine = (_SHARD_NAME.fullmatch(name) for name in names)
    key = None if part is None else (f"{part[0]:03d}", f"{part[1]:03d}")
    return 1 + max((int(m.group(3)) for m in mine
                    if m and (m.group(1) is None if key is None else m.groups()[:2] == key)),
                   default=-1)


# What h5py and json raise on a damaged file (a failed checksum is an OSError), and what
# the checks below raise on a hostile one
UNREADABLE = (OSError, KeyError, ValueError, TypeError, IndexError, StoreError)

STREAMS = {"iframes": 3, "mvs": 2, "residuals": 3}  # the frame datasets and their channels
# a video group's p_written attribute where only one stored P-frame of each GOP is written
# (the one a clip reads: preprocess/in_memory.py); accepted in files held in memory alone
ONE_A_GOP = "one a GOP"
ATTRIBUTES = {"video_id": str, "source": str, "folder_class": str, "fps": float,
              "width": int, "height": int, "frames": int, "gops": int}


def _is(value, kind):
    """Whether an HDF5 attribute or JSON value is of kind (str, int or float), bools not."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if kind is float:
        return isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)
    return isinstance(value, (int, np.integer) if kind is int else str)


def _members(group, where):
    """{name: object} of a group whose members are all hard links: an external or soft link
    could lead anywhere, inside the file or out of it."""
    members = {}
    for name in group:
        link = group.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise StoreError(f"{where}/{name} is a {type(link).__name__}, not an object of "
                             "the shard's own (a shard holds no links)")
        members[name] = group[name]
    return members


def _check_dataset(dataset, where):
    """A dataset stored in this file, in chunks, through a pipeline extract writes; returns
    its filters."""
    plist = dataset.id.get_create_plist()
    if plist.get_external_count():
        raise StoreError(f"{where} keeps its data in external files; a shard holds its own")
    if plist.get_layout() != h5py.h5d.CHUNKED:
        kind = {h5py.h5d.VIRTUAL: "virtual", h5py.h5d.CONTIGUOUS: "contiguous",
                h5py.h5d.COMPACT: "compact"}.get(plist.get_layout(), "unknown")
        raise StoreError(f"{where} is a {kind} dataset; a shard's datasets are chunked")
    filters = pipeline(dataset)
    if filters[-1:] != (FLETCHER32,) or len(filters) > 2 or (
            len(filters) == 2 and filters[0] not in COMPRESSORS):
        raise StoreError(f"{where} has filters {list(filters)}, not one compressor then "
                         "fletcher32 as extract writes them")
    return filters


def _read_num_p(dataset, gops, where):
    """num_p's values, read chunk by chunk (checked) once its shape is known to be (gops,)."""
    if dataset.shape != (gops,) or dataset.dtype.kind not in "iu":
        raise StoreError(f"{where}: num_p is {dataset.shape} {dataset.dtype}, expected "
                         f"({gops},) integers")
    chunks = Chunks(dataset)
    return np.concatenate([chunks.read((start,)) for start in range(0, gops, dataset.chunks[0])]
                          ).astype(np.int64)


def check_video(group, storage, where):
    """The attributes of one video's group (with num_p: stored P-frames per GOP) once its
    structure is checked; StoreError naming what is wrong. Only metadata and num_p are read.

    A group holds exactly iframes (G,H,W,3) uint8, mvs (G,S,H,W,2) and residuals (G,S,H,W,3)
    of the stored dtype, chunked a frame a chunk, and num_p (G,) with 0 <= n <= S; H and W
    within MPEG-4's limit; one I-frame chunk written per GOP and one MV and residual chunk
    per stored P-frame (a declared size with no data behind it is refused, never zero-filled).
    """
    members = _members(group, where)
    if set(members) != set(STREAMS) | {"num_p"} or not all(
            isinstance(member, h5py.Dataset) for member in members.values()):
        raise StoreError(f"{where} holds {sorted(members)}, expected the datasets "
                         f"{sorted(set(STREAMS) | {'num_p'})}")
    for name, dataset in members.items():  # where the bytes are, before what they describe
        _check_dataset(dataset, f"{where}/{name}")
    attrs = {name: group.attrs.get(name) for name in ATTRIBUTES}
    wrong = [name for name, kind in ATTRIBUTES.items() if not _is(attrs[name], kind)]
    if wrong:
        raise StoreError(f"{where}: attribute(s) {wrong} missing or not of type "
                         f"{[ATTRIBUTES[name].__name__ for name in wrong]}")
    iframes = members["iframes"]
    if iframes.ndim != 4:
        raise StoreError(f"{where}/iframes has shape {iframes.shape}, expected (G, H, W, 3)")
    gops, height, width = iframes.shape[:3]
    slots = members["mvs"].shape[1] if members["mvs"].ndim == 5 else 0
    if not (1 <= gops and 1 <= slots and 1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise StoreError(f"{where}: {gops} GOPs of {slots} P-frame slots, {width}x{height} "
                         f"(sides up to {MAX_SIDE})")
    for name, channels in STREAMS.items():
        dataset, dtype = members[name], np.dtype(np.uint8 if name == "iframes" else storage)
        shape = (gops, height, width, channels) if name == "iframes" else (
            gops, slots, height, width, channels)
        chunks = (1, height, width, channels) if name == "iframes" else (
            1, 1, height, width, channels)
        if (dataset.shape, dataset.chunks, dataset.dtype) != (shape, chunks, dtype):
            raise StoreError(f"{where}/{name} is {dataset.shape} {dataset.dtype} in chunks "
                             f"{dataset.chunks}, expected {shape} {dtype} in chunks {chunks}")
    num_p = _stored_counts(group, members, gops, slots, where)
    if (attrs["width"], attrs["height"], attrs["gops"]) != (width, height, gops) or not (
            gops + num_p.sum() <= attrs["frames"]):
        raise StoreError(f"{where}: its attributes (width {attrs['width']}, height "
                         f"{attrs['height']}, {attrs['gops']} GOPs, {attrs['frames']} frames) "
                         f"disagree with its datasets ({width}x{height}, {gops} GOPs, "
                         f"{gops + num_p.sum()} frames at least)")
    stamp = group.attrs.get("source_stamp")  # since 2026-12-01: which version was extracted
    return {**{name: value.item() if isinstance(value, np.generic) else value
               for name, value in attrs.items()}, "num_p": num_p,
            "source_stamp": stamp if isinstance(stamp, str) else None}


def _stored_counts(group, members, gops, slots, where):
    """num_p of a video group whose datasets have the checked shapes, once the chunks
    written agree with it: one I-frame a GOP (counted before num_p is read: G is real, not
    declared) and one MV and residual chunk a P-frame it counts."""
    iframes = members["iframes"]
    if iframes.id.get_num_chunks() != gops:
        raise StoreError(f"{where}: {iframes.id.get_num_chunks()} I-frames stored, {gops} "
                         "declared")
    num_p = _read_num_p(members["num_p"], gops, where)
    if num_p.min() < 0 or num_p.max() > slots:
        raise StoreError(f"{where}: num_p counts outside 0..{slots}")
    # a file held in memory for one clip may hold just the P-frame the clip reads of each
    # GOP (preprocess/in_memory.py); a shard on disk holds every one it counts
    one_a_gop = group.attrs.get("p_written") == ONE_A_GOP and group.file.driver == "core"
    written = int((num_p > 0).sum() if one_a_gop else num_p.sum())
    for name in ("mvs", "residuals"):
        if members[name].id.get_num_chunks() != written:
            raise StoreError(f"{where}/{name}: {members[name].id.get_num_chunks()} frames "
                             f"stored, num_p counts {written}")
    return num_p


def video_group(shard, name):
    """The group of one video in an open shard, reached through hard links only."""
    if not (isinstance(shard.get("videos", getlink=True), h5py.HardLink) and isinstance(
            shard["videos"].get(name, getlink=True), h5py.HardLink)):
        raise StoreError(f"/videos/{name} is missing or a link, not a group of the shard's own")
    return shard["videos"][name]


def _check_encode(recorded):
    """An encode record as `teamnet encode` writes it (None: SRC was not made by it)."""
    if recorded is None:
        return
    side = lambda value: _is(value, int) and MIN_SIDE <= value <= MAX_SIDE  # noqa: E731
    size = recorded.get("size") if isinstance(recorded, dict) else None
    short_side = recorded.get("short_side") if isinstance(recorded, dict) else None
    if not (isinstance(size, list) and len(size) == 2 and all(map(side, size))
            and _is(recorded.get("gop"), int) and recorded["gop"] >= 1
            and _is(recorded.get("qscale"), int) and 1 <= recorded["qscale"] <= 31
            and (short_side is None or side(short_side))):
        raise StoreError(f"encode settings {recorded!r} are not ones `teamnet encode` records")


def check_settings(settings):
    """The extraction settings a shard or index records, as ExtractSettings.recorded() makes
    them; StoreError otherwise."""
    if not isinstance(settings, dict) or settings.get("format_version") != FORMAT_VERSION:
        version = settings.get("format_version") if isinstance(settings, dict) else None
        raise StoreError(f"format version {version!r}, this reader reads {FORMAT_VERSION}; "
                         "re-run `teamnet extract` into a new folder")
    if not (set(settings) == {"format_version", "storage", "compression", "p_stride", "encode"}
            and settings["storage"] in STORAGES and settings["compression"] in COMPRESSIONS
            and _is(settings["p_stride"], int) and settings["p_stride"] >= 1):
        raise StoreError(f"settings {settings!r} are not ones `teamnet extract` records")
    _check_encode(settings["encode"])
    return settings


def _read_shard(path):
    with h5py.File(path, "r") as shard:
        members = _members(shard, "")
        if set(members) != {"videos"} or not isinstance(members["videos"], h5py.Group):
            raise StoreError(f"holds {sorted(members)}, expected the group 'videos'")
        settings = check_settings(json.loads(shard.attrs["settings"]))
        stored = {}
        for name, group in _members(shard["videos"], "/videos").items():
            if not isinstance(group, h5py.Group):
                raise StoreError(f"/videos/{name} is not a group")
            attrs = check_video(group, settings["storage"], f"/videos/{name}")
            if attrs["video_id"] in stored:
                raise StoreError(f"video {attrs['video_id']!r} is stored twice")
            stored[attrs["video_id"]] = {**attrs, "group": name}
        return settings, stored


def _unreadable(path, error):
    return StoreError(f"{path}: unreadable shard ({short(error)}); `teamnet extract` again "
                      "into this folder sets it aside and extracts its videos again")


def check_shard(path):
    """Open a shard's file and close it again: cheap (HDF5 checks its header and its length),
    and a damaged one is named before anything trusts it."""
    try:
        with h5py.File(path, "r"):
            pass
    except UNREADABLE as error:
        raise _unreadable(path, error) from None


def read_shard(path):
    """(extraction settings, {video_id: attributes}) of one shard file; StoreError naming the
    file if it cannot be read (truncated, overwritten, not HDF5, not a shard)."""
    try:
        return _read_shard(path)
    except UNREADABLE as error:
        raise _unreadable(path, error) from None


def set_aside(shard, suffix):
    """Rename a shard to NAME.SUFFIX, or NAME.SUFFIX.2, .3, ... where that is taken: one set
    aside earlier is never replaced. Returns the new path."""
    for number in itertools.count(1):
        target = shard.with_name(f"{shard.name}.{suffix}" + (f".{number}" if number > 1 else ""))
        if not target.exists() and not target.is_symlink():
            shard.rename(target)  # the folder is locked by this run: no one takes it meanwhile
            return target


def set_aside_broken(root):
    """Rename the unreadable shards of root to NAME.broken (no longer a shard; set_aside);
    returns [(path, reason, where it now is)] of those."""
    broken = []
    for shard in sorted(Path(root).glob(SHARD_GLOB)):
        try:
            _read_shard(shard)
        except UNREADABLE as error:
            broken.append((shard, short(error), set_aside(shard, "broken")))
    return broken
