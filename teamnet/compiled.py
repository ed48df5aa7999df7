"""Regional compilation: the network's repeated pieces compiled one by one.

Compiling the whole three-branch graph at once did not finish in 180 s on an H200, and its
first training steps would wait for it every run. TEAM-Net is made of few distinct pieces
repeated many times (each branch's stem and residual blocks, the TEAM modules), so each is
compiled on its own, in place (nn.Module.compile: parameter names, checkpoints and DDP are
unchanged), and blocks of one kind and shape share one compiled graph. Inductor's caches keep
the compiled code across runs, in TORCHINDUCTOR_CACHE_DIR where the user sets it, else in
~/.cache/teamnet/inductor, made private to the user (0700): torch's own default is a
predictable name in the shared temporary folder, where another user's files would be loaded
as compiled code. Code that cannot be loaded from the cache (files damaged or replaced) is
compiled again into a fresh private cache, with a warning (recompiling). A second run of the
same model compiles in a fraction of the first one's time. A compiled
TEAM module computes its gates and applies them in a few fused kernels instead of about
twenty small element-wise ones (BENCHMARKS.md).
"""
import os
import tempfile
import warnings
from pathlib import Path

import torch

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
RECOMPILES = 64  # graphs a piece may keep: block shapes x training and evaluation


def cache_folder():
    """~/.cache/teamnet/inductor, made if missing, private to this user (0700)."""
    folder = Path.home() / ".cache" / "teamnet" / "inductor"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    status = folder.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        folder.chmod(0o700)  # ours to fix; another user's folder is refused below
        if folder.stat().st_uid != os.getuid():
            raise PermissionError(f"{folder} belongs to another user")
    return folder


def use_private_cache():
    """Point Inductor at cache_folder() unless the user chose a folder: torch sets
    TORCHINDUCTOR_CACHE_DIR to its default (/tmp/torchinductor_USER) as soon as it loads its
    compiler, so a value equal to that default was not the user's choice."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    chosen = os.environ.get(CACHE_ENV)
    if chosen is None or os.path.abspath(chosen) == os.path.abspath(default_cache_dir()):
        try:
            os.environ[CACHE_ENV] = str(cache_folder())
        except OSError as error:  # a read-only home: a private folder of this run's own
            warnings.warn(f"cannot use ~/.cache/teamnet/inductor ({error}): compiled code "
                          "is kept for this run only")
            os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="teamnet-inductor-")


def recompiling(call):
    """call(), compiled code failing to load from the cache compiled again: into a fresh
    private folder (the damaged one is left for the user to look at), with a warning."""
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - Inductor's errors have no common base
        if not _is_compile_failure(error):
            raise
        fresh = tempfile.mkdtemp(prefix="teamnet-inductor-")
        warnings.warn(f"compiled code in {os.environ.get(CACHE_ENV)} could not be used "
                      f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
                      f"compiling again into {fresh}")
        os.environ[CACHE_ENV] = fresh
        torch._dynamo.reset()
        return call()


def _is_compile_failure(error):
    """Whether an error (or one it came from) is torch's compiler's."""
    while error is not None:
        module = type(error).__module__
        if module.startswith(("torch._inductor", "torch._dynamo")):
            return True
        error = error.__cause__ or error.__context__
    return False


def regions(model):
    """The pieces compiled one by one: every branch's stem and residual blocks, every TEAM
    module and every head."""
    for branch in model.branches.values():
        stem, *layers = branch.stages
        yield stem
        for layer in layers:
            yield from layer
    yield from model.teams.values()
    yield from model.heads.values()


def compile_regions(model, **options):
    """Compile model's regions in place (options: torch.compile's); returns model."""
    use_private_cache()
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit,
                                                RECOMPILES)
    for region in regions(model):
        region.compile(**options)
    return model
