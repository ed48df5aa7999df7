"""Reading annotation files as people save them: UTF-8 with or without a byte-order mark,
UTF-16 ("Unicode" in Windows editors, which always writes a BOM), any line endings."""
import codecs

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
