"""Reading annotation files as people save them: UTF-8 with or without a byte-order mark,
UTF-16 ("Unicode" in Windows editors, which always writes a BOM), any line endings; and the
one JSON annotation format (Something-Something v2), which lists and labels both read."""
import codecs
import json

from .errors import TeamnetError


class TextError(TeamnetError):
    """An annotation file that is not text in an encoding we read; the message says which."""


def read_text(path):
    """The text of a file, decoded by its byte-order mark (UTF-8 without one)."""
    try:
        data = open(path, "rb").read()
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
    if not (isinstance(items, list) and items and all(
            isinstance(item, dict) and isinstance(item.get("id"), (str, int)) for item in items)):
        return None
    return [(number, str(item["id"]), item["template"].replace("[", "").replace("]", "")
             if isinstance(item.get("template"), str) else None)
            for number, item in enumerate(items, 1)]
