"""Every setting of encode and extract, defined once: its default, its choices and its help.

A setting is a dataclass field made with `setting()`, which carries what a command line needs
(help text, choices, a range, how to parse and show a value) in the field's metadata. cli.py
builds the options from these fields, so adding a setting means adding a field here and using
it; the training settings (teamnet/config.py) are made the same way. This module imports
nothing heavy: the command line reads it before it knows which command runs.
"""
from dataclasses import dataclass, field, fields, is_dataclass

from .errors import SettingsError
from .machine import usable_cores

FORMAT_VERSION = 1  # of the shards and index.json (docs/FORMAT.md)
STORAGES = ("int8", "int16")
COMPRESSIONS = ("zstd", "balanced", "lzf", "gzip", "none")
BACKENDS = ("joblib", "dask")
MIN_SIDE = 32  # the smallest input the models take: smaller videos could not be cropped
MAX_SIDE = 8191  # MPEG-4 Part 2 codes a frame's width and height in 13 bits


def setting(default, help, *, choices=None, minimum=None, maximum=None, parse=None, show=None,
            path=None, required=False, metavar=None):
    """A dataclass field with its command-line description.

    choices: the allowed values; minimum/maximum: a numeric range; parse: text -> value
    (raising SettingsError) with show: value -> text for the shown default; path: "dir" or
    "file" (must exist) or "output" (a folder, created if missing); required: no default.
    """
    return field(default=default, metadata={
        "help": help, "choices": choices, "minimum": minimum, "maximum": maximum,
        "parse": parse, "show": show, "path": path, "required": required, "metavar": metavar})


def check_fields(settings):
    """Raise SettingsError unless every field of a settings dataclass holds a value a command
    line could have given it: its type (None where that is the default), its choices, its
    range. For settings read back from files (checkpoints, recorded settings), which anyone
    can edit."""
    for item in fields(settings):
        if is_dataclass(item.type):
            continue
        value, kind, meta = getattr(settings, item.name), item.type, item.metadata
        name = option_name(item.name)
        if value is None and item.default is None:
            continue
        if kind is float:
            fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind is tuple:  # of the default's element types, where it has elements
            element = {type(x) for x in item.default or ()}
            fits = isinstance(value, tuple) and (not element or all(type(x) in element
                                                                    for x in value))
        else:
            fits = type(value) is kind
        if not fits:
            raise SettingsError(f"{name} {value!r} is not of type {kind.__name__}")
        choices = meta.get("choices")
        if choices and value not in choices and not (kind is tuple and set(value) <= set(choices)):
            raise SettingsError(f"{name} {value!r}: choose one of {tuple(choices)}")
        if meta.get("parse") and meta.get("show"):  # what the option's own parser accepts
            meta["parse"](meta["show"](value))
        low, high = meta.get("minimum"), meta.get("maximum")
        if kind in (int, float) and ((low is not None and value < low) or (
                high is not None and value > high)):
            raise SettingsError(f"{name} {value!r} is outside {low}..{high}")


def option_name(field_name):
    """The command-line option of a settings field: lr_steps -> --lr-steps."""
    return "--" + field_name.replace("_", "-")


def parse_size(text):
    """"340x256" -> (340, 256): both sides positive and even (yuv420p needs even sides)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise SettingsError(f"{text!r} is not WIDTHxHEIGHT, e.g. 340x256") from None
    if width % 2 or height % 2:
        raise SettingsError(f"{text!r}: both sides must be even")
    if min(width, height) < MIN_SIDE:
        raise SettingsError(f"{text!r}: both sides must be at least {MIN_SIDE} pixels, the "
                            "smallest input the models take")
    if max(width, height) > MAX_SIDE:
        raise SettingsError(f"{text!r}: MPEG-4 Part 2 allows at most {MAX_SIDE} pixels a side")
    return width, height


def show_size(size):
    return f"{size[0]}x{size[1]}"


def parse_part(text):
    """"i/n" (1 <= i <= n) -> (i, n): this job's share of a dataset split n ways."""
    try:
        index, count = (int(value) for value in text.split("/"))
    except (ValueError, AttributeError):
        raise SettingsError(f"part {text!r}: expected i/n such as 1/4") from None
    if not 1 <= index <= count:
        raise SettingsError(f"part {text!r}: i must be between 1 and n")
    return index, count


@dataclass(frozen=True)
class ParallelSettings:
    """How per-file work is spread: processes here, a Dask cluster, or one share of N jobs."""
    workers: int = setting(usable_cores(), "Processes working in parallel (one decoder thread "
                           "each); the default is the cores available here.", minimum=1)
    backend: str = setting("joblib", "joblib: processes on this machine; dask: the workers of "
                           "--scheduler (or a local cluster of --workers).", choices=BACKENDS)
    scheduler: str = setting(None, "Dask scheduler, e.g. tcp://head:8786 (with --backend "
                             "dask); its workers must see SRC and DST at the same paths.",
                             metavar="ADDRESS")
    part: tuple = setting(None, "Only the I-th of N deterministic shares of the videos (SLURM "
                          "arrays: one job a share; then `teamnet index DST`).",
                          parse=parse_part, metavar="I/N")


@dataclass(frozen=True)
class EncodeSettings:
    """How `teamnet encode` re-encodes (docs/REPRESENTATION.md section 1)."""
    gop: int = setting(12, "GOP length: one I-frame then GOP-1 P-frames.", minimum=1)
    qscale: int = setting(1, "Fixed quantiser (1 = best quality).", minimum=1, maximum=31)
    size: tuple = setting((340, 256), "Output WIDTHxHEIGHT (as the reference re-encode).",
                          parse=parse_size, show=show_size)
    short_side: int = setting(None, "Instead of --size: scale the shorter side to N, keep the "
                              "aspect ratio.", minimum=MIN_SIDE, maximum=MAX_SIDE - 1,
                              metavar="N")
    ffmpeg: str = setting(None, "ffmpeg binary [default: $TEAMNET_FFMPEG, else PATH, else "
                          "imageio-ffmpeg's].", metavar="PATH")


@dataclass(frozen=True)
class ExtractSettings:
    """What `teamnet extract` stores (docs/FORMAT.md); all but shard_size are recorded in
    every shard, and a rerun into the same folder must ask for the same."""
    storage: str = setting("int8", "int8 keeps exactly the values the network sees (MV within "
                           "+-127 px, residual within [-128, 127]); int16 keeps every value.",
                           choices=STORAGES)
    compression: str = setting("zstd", "HDF5 filters. zstd: Zstd (level 1) on everything "
                               "(readers need hdf5plugin, a dependency); balanced: "
                               "lzf on I-frames and MVs, raw residuals; lzf/gzip: everything; "
                               "the last four are built into h5py (BENCHMARKS.md).",
                               choices=COMPRESSIONS)
    p_stride: int = setting(1, "Keep P-frames 1, 1+S, 1+2S, ... of each GOP: S=4 keeps 3 of 11 "
                            "(incl. the 5th, which evaluation uses) for about a third of the "
                            "storage.", minimum=1)
    shard_size: int = setting(64, "Videos per HDF5 shard (also the unit of work and of "
                              "resumption).", minimum=1)

    def recorded(self):
        """The settings a shard records: they define its content (shard_size does not)."""
        return {"format_version": FORMAT_VERSION, "storage": self.storage,
                "compression": self.compression, "p_stride": self.p_stride}
