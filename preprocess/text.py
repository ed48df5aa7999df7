"""Reading annotation files as people save them: UTF-8 with or without a byte-order mark,
UTF-16 ("Unicode" in Windows editors, which always writes a BOM), any line endings; and the
annotation formats that lists and labels files both read (Kinetics' CSVs, Something-Something
v2's JSON files), parsed here once."""
import codecs
import csv
import io
import json
import os
import stat

from .errors import TeamnetError


class TextError(TeamnetError):
    """An annotation file that is not text in an encoding we read; the message says which."""


# What was read from pipes (`--list <(grep ... list.txt)`), by path and pipe: a pipe gives
# its bytes once, and a list is read more than once (its format, then its entries)
_PIPED = {}


def read_text(path):
    """The text of a file, decoded by its byte-order mark (UTF-8 without one)."""
    try:
        status = os.stat(path)
        key = (str(path), status.st_dev, status.st_ino)
        data = _PIPED.get(key)
        if data is None:
            with open(path, "rb") as file:
                data = file.read()
            if not stat.S_ISREG(status.st_mode):
                _PIPED[key] = data
    except OSError as error:
        raise TextError(f"{path}: cannot be read ({error.strerror})") from None
    encoding = ("utf-16" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else
                "utf-8-sig")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1 if encoding == "utf-8-sig" else "?"
        raise TextError(f"{path}:{line}: not {encoding.removesuffix('-sig').upper()} text "
                        f"(byte {error.start}); save it as UTF-8") from None


def text_lines(path):
    """(line number, line without its ending) of a file, every line; '\\r\\n', '\\n' and '\\r'
    end a line, nothing else does (a name may hold any other character)."""
    text = read_text(path).replace("\r\n", "\n").replace("\r", "\n")
    return list(enumerate(text.split("\n"), 1))


def quoted(text, limit=120):
    """A piece of a file for an error message: one line at most, and not a long one (a JSON
    annotation file is one line of megabytes)."""
    line = text.splitlines()[0] if text else text
    return repr(line[:limit]) + ("..." if len(line) > limit or line != text else "")


def ssv2_entries(path):
    """[(item number, video id, class or None)] of a Something-Something v2 annotation file
    (something-something-v2-train.json, -validation.json, -test.json: a JSON list of
    {"id": "78687", "template": "Holding [something] next to [something]", ...}), or None
    where the file is not one. The class is the template without '[' and ']', exactly as
    something-something-v2-labels.json names the 174 classes; test items have none."""
    text = read_text(path)
    if not text.lstrip().startswith("["):
        return None
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        return None
    except RecursionError:  # [[[[...: no annotation file nests this deep
        raise TextError(f"{path}: JSON nested too deeply to be an annotation file") from None
    if not (isinstance(items, list) and items and all(
            isinstance(item, dict) and isinstance(item.get("id"), (str, int)) for item in items)):
        return None
    return [(number, str(item["id"]), item["template"].replace("[", "").replace("]", "")
             if isinstance(item.get("template"), str) else None)
            for number, item in enumerate(items, 1)]


def kinetics_entries(path):
    """[(row number, clip file name, label)] of an official Kinetics CSV (label, youtube_id,
    time_start, time_end, split), or None where the file is not one. Clips are named as the
    download scripts name them, <youtube_id>_<start:06d>_<end:06d> (whole seconds), or the
    bare YouTube id where the CSV gives no times."""
    rows = csv_rows(path, csv.DictReader)
    if not rows or not {"label", "youtube_id"} <= {key.strip() for key in rows[0] if key}:
        return None
    entries = []
    for number, row in enumerate(rows, 2):
        row = {key.strip(): (value or "").strip() for key, value in row.items() if key}
        try:
            times = [int(float(row[key])) for key in ("time_start", "time_end") if row.get(key)]
        except ValueError:
            raise TextError(f"{path}:{number}: time_start and time_end must be seconds, got "
                            f"{quoted(row.get('time_start', ''))} and "
                            f"{quoted(row.get('time_end', ''))}") from None
        entries.append((number, "_".join([row["youtube_id"], *(f"{t:06d}" for t in times)]),
                        row["label"]))
    return entries


def csv_rows(path, reader=csv.reader):
    """The rows of a CSV file (reader: csv.reader or csv.DictReader), or TextError naming
    the file and the line where it is not CSV we read (a field over the csv module's 128 KB
    limit, a NUL byte)."""
    rows = reader(io.StringIO(read_text(path), newline=""))
    try:
        return list(rows)
    except csv.Error as error:
        line = rows.line_num + 1  # the line being read (csv counts those it finished)
        raise TextError(f"{path}:{line}: not CSV this reads ({error})") from None


def one_class_each(path, entries):
    """{video: class} of [(line number, video, class)], refusing a video given two classes
    (naming both lines); a video given one class twice counts once."""
    classes, lines = {}, {}
    for number, video, class_name in entries:
        if classes.get(video, class_name) != class_name:
            raise TextError(f"{path}: {video!r} has two classes, {classes[video]!r} and "
                            f"{class_name!r} (lines {lines[video]} and {number}); keep one")
        classes[video], lines[video] = class_name, number
    return classes


def plural(count, noun):
    """"1 video", "2 videos", "1 class", "3 classes"."""
    return f"{count:,} {noun if count == 1 else noun + ('es' if noun.endswith('s') else 's')}"
