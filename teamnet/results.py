"""`teamnet predict --output FILE.jsonl`: one JSON line a video, safe to interrupt and resume.

The first line says what wrote the file ({"teamnet_predict": {checkpoint, its SHA-256, the
protocol}}); every other line is one video's result, {"video", "top"} or {"video", "error"} (a
video file's with its resolved "path" and "source" stamp, size:mtime), written with one write()
of the whole line as soon as the video is done. A kill at any moment leaves whole lines (at
most the last one torn, which the next run drops), and a rerun with the same --output skips the
videos it holds: the same path with the same stamp (a file changed since, or another file now
at that path, is done again). A file written with another checkpoint or protocol is refused by
name: its lines would not be comparable.
"""
import hashlib
import json
import os
from pathlib import Path

from preprocess.atomic import NO_SPACE, atomic_output, is_disk_full
from preprocess.errors import SettingsError, TeamnetError
from preprocess.lock import file_lock

HEADER = "teamnet_predict"
TORN_START = b'{"video": '  # how every result line begins (_line)


class ResultsNotWritten(TeamnetError):
    """A results file that cannot take the next line (a full disk)."""


def file_sha256(path, block=1 << 22):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _line(record):
    text = json.dumps(record, ensure_ascii=False)
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a non-UTF-8 file name (surrogate escapes): \u escapes
        return (json.dumps(record) + "\n").encode("ascii")


def key(record):
    """What identifies a result's video: the resolved path of a video file (its "path"),
    else the video id (predict --data)."""
    return record.get("path") or record["video"]


def failed(record):
    """Whether a result is a failure: the video's, or any of its windows'."""
    return "error" in record or any("error" in window for window in record.get("windows", ()))


def plan(done, keys, stamps):
    """(to do, already in, failed in an earlier run, changed since) of videos i (keys[i],
    source stamps[i], None for stored videos), given the results done ({key: record}): a
    file is done again where its stamp differs from its result's (another file now at the
    path), {i: earlier stamp} in changed."""
    todo, kept, failures, changed = [], [], [], {}
    for i, (name, stamp) in enumerate(zip(keys, stamps)):
        record = done.get(name)
        if record is None:
            todo.append(i)
        elif stamp is not None and record.get("source") != stamp:
            todo.append(i)
            changed[i] = record.get("source")
        else:
            kept.append(i)
            if failed(record):
                failures.append((i, record))
    return todo, kept, failures, changed


class ResultFile:
    """Open (locked) for one run: .done holds the results already in it, {key: record}
    (the last line of a key wins); write(record) appends one. identity: what the header must
    say; retry_failed: drop the videos that failed (any part of them), to do them again."""

    def __init__(self, path, identity, retry_failed=False):
        self.path, self.identity, self.retry_failed = Path(path), identity, retry_failed
        self.done, self._descriptor, self._lock = {}, None, None

    def __enter__(self):
        self._lock = file_lock(self.path)
        self._lock.__enter__()
        try:
            self._open()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def _open(self):
        lines = self._read()  # [(bytes, record)]
        header = lines[0][0] if lines else _line({HEADER: self.identity})
        kept = [(line, record) for line, record in lines[1:]
                if not (self.retry_failed and failed(record))]
        try:
            if len(kept) < len(lines) - 1 or not lines:
                with atomic_output(self.path) as temporary:  # never a file half rewritten
                    temporary.write_bytes(b"".join([header, *(line for line, _ in kept)]))
            elif self._torn:  # cut back to its whole lines: needs no room, one system call
                os.truncate(self.path, sum(len(line) for line, _ in lines))
        except OSError as error:
            raise ResultsNotWritten(
                f"could not write {self.path}: "
                f"{NO_SPACE if is_disk_full(error) else error.strerror}; it is as it was. "
                "Make room (or give a writable --output), then rerun") from None
        self.done = {key(record): record for _, record in kept}
        self._descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def _read(self):
        """The file's whole lines as (bytes, record), header checked; a torn last line left
        out. Only a file that is, line for line, one this tool wrote is read: its first line
        is a whole header line (we create the file whole, header included, so a kill never
        tears it) and every other whole line a result. Anything else (a JSON file written
        without a final newline, notes.txt) is refused untouched; an empty file holds
        nothing to lose."""
        self._torn = False
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):  # a write cut by a kill or a full disk
            cut = data.rfind(b"\n") + 1
            # every record we write starts with its video: a torn line does too
            if not cut or not data[cut:].startswith(TORN_START[:len(data) - cut]):
                self._refuse(data.count(b"\n") + 1)
            data, self._torn = data[:cut], True
        lines = []
        for number, line in enumerate(data.splitlines(keepends=True), 1):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict) or (number == 1) != (HEADER in record) or (
                    number > 1 and "video" not in record) or (
                    number == 1 and not isinstance(record[HEADER], dict)):
                self._refuse(number)
            lines.append((line, record))
        if lines:
            self._check(lines[0][1][HEADER])
        return lines

    def _refuse(self, number):
        raise SettingsError(f"{self.path}:{number}: not a line `teamnet predict --output` "
                            "writes, so this file is not a results file of this tool; it was "
                            "left untouched: give another --output")

    def _check(self, recorded):
        differ = sorted(key for key in {*recorded, *self.identity} if key != "checkpoint"
                        and recorded.get(key) != self.identity.get(key))
        if differ:
            shown = ", ".join(f"{key} {recorded.get(key)!r} there, {self.identity.get(key)!r} "
                              "here" for key in differ)
            raise SettingsError(f"{self.path} holds results of another checkpoint or "
                                f"protocol ({shown}; written with {recorded.get('checkpoint')})"
                                ": give another --output, or the options that wrote it")

    def write(self, record):
        """Append one video's line whole (one write); on a full disk (a short write or
        ENOSPC) the file is cut back to its whole lines and the run stops, naming what was
        kept and the room needed."""
        line = _line({"video": record["video"], **record})  # video first: TORN_START
        size = os.fstat(self._descriptor).st_size
        try:
            written = os.write(self._descriptor, line)
        except OSError as error:
            written, failure = 0, error
        else:
            failure = None
        if written != len(line):
            try:
                os.ftruncate(self._descriptor, size)  # never a torn line left behind
            except OSError:
                pass  # the next run drops it (_read)
            full = failure is None or is_disk_full(failure)
            raise ResultsNotWritten(
                f"could not write to {self.path}: "
                f"{NO_SPACE if full else failure.strerror}; the {len(self.done)} result(s) "
                f"before {record['video']!r} are kept in it. Make room (at least "
                f"{len(line):,} bytes), then rerun with the same --output to continue")
        self.done[key(record)] = record

    def __exit__(self, *failure):
        if self._descriptor is not None:
            os.close(self._descriptor)
        return self._lock.__exit__(*failure)
