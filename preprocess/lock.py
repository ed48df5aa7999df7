"""One run at a time in an output folder: an advisory lock (flock) on a file inside it.

A run that writes a folder (encode, extract, index, train) holds DST/.teamnet.lock for its
whole life; a second run on the same folder is refused with a message naming the holder's
host, pid, command and start time. Jobs of one split dataset (`--part I/N`) share the folder:
each holds the folder's lock shared and its own part's lock exclusively, so parts run side by
side while a whole run, `teamnet index` or a second job of the same part is refused.
The kernel drops the lock when its holder exits, however it exits, so no stale lock blocks a
rerun after a crash. flock works on local file systems and on NFS (where Linux maps it onto
POSIX byte-range locks); where a file system locks nothing (NFS without lockd, some FUSE and
SMB mounts) the run stops and says so, and TEAMNET_NO_LOCK=1 runs without the lock.
"""
import fcntl
import json
import os
import socket
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .errors import TeamnetError

LOCK_NAME = ".teamnet.lock"
NO_LOCK = "TEAMNET_NO_LOCK"  # =1: take no lock (file systems without locks)


class FolderBusy(TeamnetError):
    """Another run holds the folder (or this part of it)."""


class LockError(TeamnetError):
    """The folder's lock cannot be taken for another reason than another run holding it."""


def _holder(path):
    try:
        text = Path(path).read_text(encoding="utf-8")
        if not text:  # shared holders write nothing: they are jobs of a split run
            return "jobs of a split run (--part) hold it"
        holder = json.loads(text)
        return (f"host {holder['host']}, pid {holder['pid']}, since {holder['since']}: "
                f"{holder['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def _acquire(stack, path, exclusive, folder):
    """Lock `path` (created if missing) without waiting; the lock lives as long as `stack`."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise LockError(f"{folder}: cannot create its lock file {Path(path).name} "
                        f"({error.strerror}); the folder must be writable") from None
    stack.callback(os.close, descriptor)
    try:
        fcntl.flock(descriptor, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        raise FolderBusy(f"{folder} is in use by another teamnet run ({_holder(path)}); wait "
                         "for it to finish, or use another folder") from None
    except OSError as error:  # ENOLCK, EOPNOTSUPP: a file system without locks
        raise LockError(f"{folder}: its file system cannot lock files ({error.strerror}; NFS "
                        "without lockd, some FUSE and SMB mounts do not); use a folder on "
                        f"another file system, or run with {NO_LOCK}=1 if no other run can "
                        "use this folder meanwhile") from None
    if exclusive:  # say who holds it, for the message above
        record = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                             "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "command": " ".join(sys.argv[-12:])})
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, record.encode(), 0)
            stack.callback(os.ftruncate, descriptor, 0)  # on release: no stale holder to name
        except OSError:  # a full disk: the lock holds all the same, only unnamed
            pass


@contextmanager
def folder_lock(folder, part=None):
    """Hold `folder` for one run (made if missing): exclusively, or, for part (i, n) of a
    split run, shared with the other parts and exclusively for this part."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LockError(f"{folder}: cannot be made ({error.strerror})") from None
    if os.environ.get(NO_LOCK) == "1":
        yield
        return
    with ExitStack() as stack:
        _acquire(stack, folder / LOCK_NAME, part is None, folder)
        if part is not None:
            _acquire(stack, folder / f"{LOCK_NAME[:-5]}-part-{part[0]}of{part[1]}.lock", True,
                     f"{folder} (part {part[0]}/{part[1]})")
        yield


@contextmanager
def file_lock(path):
    """Hold one output file for one run: an exclusive lock on a hidden file beside it
    (.NAME.lock), so that the file itself may be replaced (atomically) while held."""
    path = Path(path)
    if os.environ.get(NO_LOCK) == "1":
        yield
        return
    with ExitStack() as stack:
        _acquire(stack, path.with_name(f".{path.name}.lock"), True, path)
        yield
