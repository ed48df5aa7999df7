"""The sharded HDF5 store of the partially decoded representation (layout: docs/FORMAT.md).

Needs only h5py, hdf5plugin and NumPy (no decoder, no torch): the training package reads
through here.
- layout.py: the names of the files and what a shard records;
- writer.py: writes one video into a shard (extract.py makes the shards);
- index.py: index.json, built from the complete shards; labels; totals;
- reader.py: reads videos and clips back.
"""
import hdf5plugin  # noqa: F401  registers the Zstd filter with HDF5: every reader needs it

from .index import (build_index, check_labels_kept, complete_shards, labels_for, list_videos,
                    load_index, read_labels, summary)
from .layout import (INDEX_NAME, SHARD_GLOB, StoreError, check_shard, is_shard_name,
                     next_shard_number, read_shard, set_aside, set_aside_broken, shard_name,
                     shard_prefix)
from .reader import ClipReader, read_video
from .writer import VideoWriter

__all__ = ["INDEX_NAME", "SHARD_GLOB", "ClipReader", "StoreError", "VideoWriter", "build_index",
           "check_labels_kept", "check_shard",
           "complete_shards", "is_shard_name", "labels_for", "list_videos", "load_index",
           "next_shard_number", "read_labels", "read_shard", "read_video", "set_aside",
           "set_aside_broken", "shard_name", "shard_prefix", "summary"]
