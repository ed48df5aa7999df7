"""A small real file system (tmpfs, which needs root) to fill up: full-disk tests."""
import os
import shutil
import subprocess
from contextlib import contextmanager

import pytest


@contextmanager
def small_disk(path, size):
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def grow(path, size):
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def fill(disk):
    """Take every free byte of a small disk (a file of zeros, written until it is full)."""
    descriptor = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(descriptor, b"\0" * 512):
            pass
    except OSError:
        pass
    finally:
        os.close(descriptor)
