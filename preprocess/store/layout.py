"""What is where in an extracted dataset folder: shard and index names, a shard's record."""
import json
import re

import h5py

from ..errors import TeamnetError

INDEX_NAME = "index.json"
SHARD_GLOB = "shard-*.h5"
_SHARD_NAME = re.compile(r"shard-(?:(\d{3})of(\d{3})-)?(\d{5})\.h5")


class StoreError(TeamnetError):
    """A dataset folder that cannot be read or written as asked; the message says why."""


def shard_name(number, part=None):
    """shard-00042.h5, or shard-002of008-00042.h5 for part 2 of 8 (parts never collide)."""
    prefix = "" if part is None else f"{part[0]:03d}of{part[1]:03d}-"
    return f"shard-{prefix}{number:05d}.h5"


def next_shard_number(names, part=None):
    """The first free shard number of a part, given the shard names that exist."""
    mine = (_SHARD_NAME.fullmatch(name) for name in names)
    key = None if part is None else (f"{part[0]:03d}", f"{part[1]:03d}")
    return 1 + max((int(m.group(3)) for m in mine
                    if m and (m.group(1) is None if key is None else m.groups()[:2] == key)),
                   default=-1)


def read_shard(path):
    """(extraction settings, {video_id: attributes}) of one shard file."""
    with h5py.File(path, "r") as shard:
        return json.loads(shard.attrs["settings"]), {
            group.attrs["video_id"]: dict(group.attrs, group=name, num_p=group["num_p"][()])
            for name, group in shard["videos"].items()}
