"""Outputs appear whole or not at all: written under a hidden temporary name, then renamed."""
import json
import os
from contextlib import contextmanager
from pathlib import Path

from .discover import PARTIAL_SUFFIX


def partial_path(path):
    """The hidden temporary name of an output being written: DIR/.NAME.partial"""
    path = Path(path)
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


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
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
