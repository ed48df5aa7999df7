"""One way to run per-item work over processes: joblib, with a progress bar, on this machine
or, through joblib's dask backend, on a Dask cluster.

Workers report failures in their results instead of raising, so that one bad file never
stops the others; results arrive as they finish and stay small (outputs go to shared storage).
"""
import functools
import multiprocessing
import signal
import threading
import warnings
from contextlib import contextmanager, nullcontext

import joblib
from tqdm import tqdm


@contextmanager
def _dask(scheduler, workers):
    """A client of the Dask scheduler at `scheduler`, or of a local cluster on loopback."""
    from dask.distributed import Client, LocalCluster
    cluster = None if scheduler else LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None)
    try:
        with Client(scheduler or cluster.scheduler_address), joblib.parallel_config(backend="dask"):
            yield
    finally:
        if cluster is not None:
            cluster.close()


def _in_worker(function, item):
    """function(item), in a worker process deaf to Ctrl-C: the terminal sends SIGINT to the
    whole process group, and the main process alone says what was done and stops the
    workers (a worker's own traceback would bury that)."""
    if multiprocessing.parent_process() and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return function(item)


def run_parallel(function, items, parallel, description, total=None, unit="file", weight=None,
                 size=None, bar=True):
    """Yield function(item) for every item, in completion order, as `parallel` (a
    settings.ParallelSettings) says.

    size(item), when given, estimates an item's work: the largest are handed out first, so
    that a run does not end with one worker on a large item while the others idle (measured
    on 2 workers: BENCHMARKS.md, scaling).

    joblib: over `workers` local processes. dask: over the workers of the Dask scheduler at
    `scheduler` (an address such as tcp://host:8786), or of a local cluster of `workers`
    processes when none is given. The progress bar counts `total` units (default: one per
    item); `weight(result)` says how many units a finished result stands for (default 1);
    bar=False shows none.
    """
    items = list(items) if size is None else sorted(items, key=size, reverse=True)
    total = len(items) if total is None else total
    jobs = (joblib.delayed(functools.partial(_in_worker, function))(item) for item in items)
    dask = parallel.backend == "dask"
    # min(): joblib starts every worker even when there are fewer items
    n_jobs = -1 if dask else max(1, min(parallel.workers, len(items)))
    cluster = _dask(parallel.scheduler, parallel.workers) if dask else nullcontext()
    with cluster, tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True,
                       disable=not bar) as progress:
        # one item a dispatch: items are coarse (a video, a shard), and joblib's automatic
        # batching would group them at the end of a run, where it leaves workers idle
        results = joblib.Parallel(n_jobs=n_jobs, batch_size=1,
                                  return_as="generator_unordered")(jobs)
        try:
            for result in results:
                progress.update(1 if weight is None else weight(result))
                yield result
        finally:  # stopped early (Ctrl-C, an error): the workers' tasks are cancelled
            with warnings.catch_warnings():  # and joblib's count of them is no news
                warnings.simplefilter("ignore", UserWarning)
                results.close()
