"""Outputs appear whole or not at all: written under a hidden temporary name, then renamed.

The temporary name carries the writer's host and pid, so that two writers never share one,
and ends in PARTIAL_SUFFIX, so that a later run (holding the folder's lock, preprocess/lock.py)
can remove what a killed run left.
"""
import errno
import hashlib
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from .discover import PARTIAL_SUFFIX

NO_SPACE = "no space left on device"


NAME_MAX = 255  # bytes in one file name (Linux, macOS, Windows file systems)


def partial_path(path):
    """The hidden temporary name of an output being written: DIR/.NAME.HOST-PID.partial.
    Where that would be too long for a legal NAME, the start of NAME and a digest of all of
    it stand for NAME (outputs with long names still get distinct temporary names)."""
    path = Path(path)
    tail = os.fsencode(f".{owner_tag()}{PARTIAL_SUFFIX}")
    name = os.fsencode(path.name)
    if 1 + len(name) + len(tail) > NAME_MAX:
        digest = hashlib.sha256(name).hexdigest()[:16].encode()
        name = name[:NAME_MAX - len(tail) - len(digest) - 2] + b"~" + digest
    return path.with_name(os.fsdecode(b"." + name + tail))


def remove_partials(folder, pattern="*", recursive=False):
    """Remove the temporary files of killed runs (.PATTERN.partial) in folder (and below it).
    Only for a folder this run holds the lock of: no other run is writing them."""
    glob = Path(folder).rglob if recursive else Path(folder).glob
    for stale in glob(f".{pattern}{PARTIAL_SUFFIX}"):
        stale.unlink(missing_ok=True)


def owner_tag():
    """HOST-PID: what names a temporary output as this process's."""
    return f"{socket.gethostname()}-{os.getpid()}"


def is_disk_full(error):
    """Whether an error (or one it was raised from) says the disk is full. HDF5 and torch
    report it in their own words, with the errno in the text at best."""
    while error is not None:
        if getattr(error, "errno", None) == errno.ENOSPC or "No space left" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextmanager
def atomic_output(path):
    """Yield a temporary path to write; on success it is renamed to path (unless the writer
    removed it: nothing to publish), on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(path)
    try:
        yield temporary
        if temporary.exists():
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path, data):
    text = json.dumps(data, indent=1, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a non-UTF-8 file name (surrogate escapes): JSON's \u escapes
        text = json.dumps(data, indent=1)
    with atomic_output(path) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")


def write_report(path, data):
    """Write a run's report; None, or the reason it could not be written (a full disk must
    not hide the failures the report would list: callers print them either way)."""
    try:
        write_json(path, data)
    except OSError as error:
        return f"could not write {path}: {NO_SPACE if is_disk_full(error) else error}"
    return None
