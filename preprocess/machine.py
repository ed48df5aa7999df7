"""What this machine lends a process: cores and memory, as the kernel will enforce them.

os.cpu_count() and torch's default thread count see every core of the host, but a container
or a batch job may be held to fewer (CPU affinity, a cgroup CPU quota), and the memory it may
use may be a cgroup's limit rather than the host's free memory. Defaults (worker counts,
threads) and the training memory check are sized from these readings instead.
"""
import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _read(path):
    """A small system file's words, or None where it does not exist here."""
    try:
        return path.read_text().split()
    except OSError:
        return None


def usable_cores():
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (v2
    cpu.max or v1 cpu.cfs_quota_us) rounded up to whole cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _read(CGROUP / "cpu.max")  # "max 100000" or "200000 100000"
    if quota is None:
        quota = [*(_read(CGROUP / "cpu" / "cpu.cfs_quota_us") or ["-1"]),
                 *(_read(CGROUP / "cpu" / "cpu.cfs_period_us") or ["100000"])]
    try:
        limit, period = int(quota[0]), int(quota[1])
    except (ValueError, IndexError):  # "max": no quota
        return max(1, cores or 1)
    if limit > 0 and period > 0:
        cores = min(cores, math.ceil(limit / period))
    return max(1, cores or 1)


def available_memory():
    """Bytes this process could still take before the kernel refuses or kills: the host's
    MemAvailable, or less where a cgroup memory limit (v2 memory.max, v1
    memory.limit_in_bytes) leaves less."""
    words, available = _read(Path("/proc/meminfo")) or [], None
    if "MemAvailable:" in words:  # "MemAvailable: 24123456 kB"
        available = int(words[words.index("MemAvailable:") + 1]) * 1024
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes",
                                    "memory/memory.usage_in_bytes")):
        limit, usage = _read(CGROUP / limit_file), _read(CGROUP / usage_file)
        if limit and usage and limit[0].isdigit() and int(limit[0]) < 2**60:
            left = max(0, int(limit[0]) - int(usage[0]))
            available = left if available is None else min(available, left)
            break
    return available

