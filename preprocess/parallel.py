"""One way to run per-item work over processes: joblib, with a progress bar.

Workers report failures in their results instead of raising, so that one bad file never
stops the others; results arrive as they finish.
"""
import joblib
from tqdm import tqdm


def run_parallel(function, items, workers, description, total=None, unit="file", weight=None):
    """Yield function(item) for every item, in completion order, over `workers` processes.

    The progress bar counts `total` units (default: one per item); `weight(result)` says how
    many units a finished result stands for (default 1).
    """
    items = list(items)
    total = len(items) if total is None else total
    jobs = (joblib.delayed(function)(item) for item in items)
    # min(): joblib starts every worker even when there are fewer items
    parallel = joblib.Parallel(n_jobs=max(1, min(workers, len(items))),
                               return_as="generator_unordered")
    with tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True) as bar:
        for result in parallel(jobs):
            bar.update(1 if weight is None else weight(result))
            yield result
