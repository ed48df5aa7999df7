"""`teamnet` under torchrun, two ranks, from the tests. A run still going at its timeout is
failed with every rank's Python stacks (the CLI prints them on SIGUSR1: cli._watchable),
not a bare timeout: what it waited for, on a machine no one can log into afterwards."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TEAMNET_CLI = str(Path(sys.executable).parent / "teamnet")


def torchrun(*args, timeout=300):
    """subprocess.run's CompletedProcess of `torchrun --nproc_per_node 2 teamnet ARGS`."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--no-python", TEAMNET_CLI, *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # torchrun starts each rank in a session of its own: signalled one by one
        processes = descendants(process.pid)
        for pid in processes:  # the ranks and their loader workers print their stacks
            _signal(pid, signal.SIGUSR1)
        time.sleep(5)
        for pid in [process.pid, *processes]:
            _signal(pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"teamnet {' '.join(map(str, args))} still running after {timeout} s under "
                    f"torchrun; what its processes were doing:\n{err[-12000:]}\n{out[-2000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def descendants(pid):
    """The processes under pid, children first (Linux: /proc/PID/task/*/children)."""
    children = [int(child) for task in Path(f"/proc/{pid}/task").glob("*")
                for child in _read(task / "children").split()]
    return [grandchild for child in children for grandchild in [child, *descendants(child)]]


def _read(path):
    try:
        return path.read_text()
    except OSError:  # gone meanwhile
        return ""


def _signal(pid, number):
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass
