"""What is where in an extracted dataset folder: shard and index names, a shard's record."""
import json
import re
from pathlib import Path

import h5py

from ..errors import TeamnetError

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


# What h5py and json raise on a damaged file (a failed checksum is an OSError)
UNREADABLE = (OSError, KeyError, ValueError, TypeError, IndexError)


def _read_shard(path):
    with h5py.File(path, "r") as shard:
        return json.loads(shard.attrs["settings"]), {
            group.attrs["video_id"]: dict(group.attrs, group=name, num_p=group["num_p"][()])
            for name, group in shard["videos"].items()}


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


def set_aside_broken(root):
    """Rename the unreadable shards of root to NAME.broken (no longer a shard); returns
    [(path, reason)] of those."""
    broken = []
    for shard in sorted(Path(root).glob(SHARD_GLOB)):
        try:
            _read_shard(shard)
        except UNREADABLE as error:
            shard.rename(shard.with_name(shard.name + ".broken"))
            broken.append((shard, short(error)))
    return broken
