"""Re-encoding to MPEG-4 Part 2 with a strict GOP (docs/REPRESENTATION.md section 1).

One I-frame then gop-1 P-frames, no B-frames: g and bf, plus sc_threshold disabled, since
some FFmpeg builds promote P-frames to I-frames at scene cuts (the imageio-ffmpeg 9.0.2 build
did not, even at a hard cut; Debian's 5.1 did). Whatever the build does, every output is
verified by decoding its frame types before it gets its final name.
"""
import errno
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import ffmpeg

from .atomic import atomic_output, remove_partials, write_json, write_report
from .decode import VideoError, frame_types, open_video, probe
from .discover import (DatasetError, file_size, find_videos, report_name, select_part,
                       selected)
from .errors import SetupError
from .lock import folder_lock
from .parallel import run_parallel
from .settings import EncodeSettings, ParallelSettings

FFMPEG_ENV = "TEAMNET_FFMPEG"
REPORT_NAME = "encode-report.json"
SETTINGS_NAME = "encode-settings.json"  # what DST was encoded with: a rerun must ask the same
NO_SCENE_CUTS = 1_000_000_000
STAMP = "teamnet-source "  # + size:mtime_ns of the source, an output's comment tag
ASPECT_TOLERANCE = 0.10  # a larger change of the display aspect ratio is warned about
STATUSES = ("encoded", "skipped", "failed")


@dataclass(frozen=True)
class EncodeResult:
    source: str
    status: str  # "encoded", "skipped" (already done) or "failed"
    reason: str = ""  # why it failed, or a warning about an encoded file


def find_ffmpeg(explicit=None):
    """The ffmpeg binary: explicit, then $TEAMNET_FFMPEG, then PATH, then imageio-ffmpeg's."""
    for candidate, origin in ((explicit, "--ffmpeg"), (os.environ.get(FFMPEG_ENV), FFMPEG_ENV)):
        if candidate:
            found = shutil.which(candidate)
            if not found:
                raise SetupError(f"{origin}={candidate}: no such executable")
            return found
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def output_size(width, height, settings):
    """(width, height) of the re-encoded video: fixed, or the short side scaled to N (even)."""
    if not settings.short_side:
        return settings.size
    scale = settings.short_side / min(width, height)
    even = lambda value: max(2, int(round(value * scale / 2)) * 2)
    return even(width), even(height)


def ffmpeg_command(source, target, width, height, settings, stream=0, stamp=None, span=None):
    """The ffmpeg argument list (no shell involved) for one file: its video stream number
    `stream` (decode.main_stream), audio and other streams dropped; stamp (source_stamp)
    recorded as the output's comment tag; span (start, seconds or None: to the end) encodes
    that part only (`predict --window`)."""
    start, seconds = span or (None, None)
    trim = {**({"ss": start} if start else {}), **({"t": seconds} if seconds else {})}
    video = scaled(ffmpeg.input("SOURCE.mkv", **trim)[f"v:{stream}"], width, height)
    return compiled(ffmpeg.output(video, "TARGET.mp4", **encoder_options(settings, stamp)),
                    settings, source, target)


def scaled(video, width, height):
    """An ffmpeg-python video stream scaled as every encoding scales its frames."""
    return video.filter("scale", width, height).filter("setsar", 1)


def encoder_options(settings, stamp=None):
    """The output options of every encoding (strict GOP MPEG-4 Part 2), as ffmpeg-python
    keyword arguments."""
    return dict(
        format="mp4", vcodec="mpeg4", pix_fmt="yuv420p",
        g=settings.gop, bf=0, sc_threshold=NO_SCENE_CUTS, **{"q:v": settings.qscale},
        # one encoder thread: ffmpeg's mpeg4 encoder cuts each frame into a slice a thread,
        # and its default thread count follows the machine's cores, so the same file encoded
        # on two machines differed (measured: 1, 2, 4 and auto threads gave four different
        # decodes); one slice makes the encoding the same everywhere
        threads=1,
        **({"metadata": f"comment={stamp}"} if stamp else {}))


def compiled(output, settings, source, target):
    """The argument list of an ffmpeg-python output whose input is named SOURCE.mkv (or,
    where source is a list, whose inputs are named SOURCE-0.mkv, SOURCE-1.mkv...) and
    output TARGET.mp4: those stand-ins replaced by the real names. ffmpeg-python hashes its
    arguments as UTF-8, which a non-UTF-8 file name is not."""
    sources = ({f"SOURCE-{k}.mkv": str(path) for k, path in enumerate(source)}
               if isinstance(source, list) else {"SOURCE.mkv": str(source)})
    names = {**sources, "TARGET.mp4": str(target)}
    command = output.global_args("-nostdin", "-hide_banner", "-loglevel", "error").compile(
        cmd=settings.ffmpeg, overwrite_output=True)
    return [names.get(argument, argument) for argument in command]


def check_strict_gop(types, gop):
    """Raise VideoError unless types is I followed by gop-1 P-frames, repeated."""
    if not types:
        raise VideoError("the encoded file has no frames")
    for index, kind in enumerate(types):
        expected = "I" if index % gop == 0 else "P"
        if kind != expected:
            raise VideoError(f"encoded frame {index} is a {kind}-frame, expected {expected} "
                             f"(GOP {gop}); is this ffmpeg's mpeg4 encoder?")


def source_stamp(path):
    """What tells one version of a file from another: its size and modification time."""
    status = os.stat(path)
    return f"{STAMP}{status.st_size}:{status.st_mtime_ns}"


def recorded_stamp(encoded):
    """The source stamp an encoded file carries (its comment tag), or None (encoded by an
    earlier version, or not by us)."""
    container, _ = open_video(encoded)
    with container:
        comment = container.metadata.get("comment", "")
    return comment if comment.startswith(STAMP) else None


def encode_video(source, target, settings, span=None):
    """Re-encode one file (span: a part of it, as ffmpeg_command takes); the output appears
    only once complete and verified. An output whose source was replaced since (another size
    or modification time than it records) is encoded again."""
    try:
        stamp = source_stamp(source)
        if target.exists() and recorded_stamp(target) in (None, stamp):
            return EncodeResult(str(source), "skipped")
        info = probe(source)
        width, height = output_size(info.width, info.height, settings)
        with atomic_output(target) as temporary:
            command = ffmpeg_command(source, temporary, width, height, settings, info.stream,
                                     stamp, span)
            done = subprocess.run(command, capture_output=True, text=True, errors="replace")
            if done.returncode != 0:
                message = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
                raise VideoError(f"ffmpeg failed: {message[0]}")
            types = frame_types(temporary)
            check_strict_gop(types, settings.gop)
    except VideoError as error:
        return EncodeResult(str(source), "failed", str(error))
    except OSError as error:  # a path longer than PATH_MAX, an unwritable folder
        if error.errno == errno.ENAMETOOLONG:
            return EncodeResult(str(source), "failed", f"cannot be written: {error.strerror}")
        return EncodeResult(str(source), "failed", f"cannot write {target}: {error.strerror}; "
                            "make its folder writable, or give another target folder")
    except Exception as error:  # a bug must not cost the other files their output
        return EncodeResult(str(source), "failed", f"internal error: {error!r}")
    warnings = []
    if info.frames and len(types) < info.frames - settings.gop:
        warnings.append(f"only {len(types)} of the {info.frames} frames it declares could be "
                        "decoded: the input may be truncated")
    shown, made = info.width / info.height, width / height
    if abs(made / shown - 1) > ASPECT_TOLERANCE:
        hint = " (a portrait clip?)" if shown < 1 <= made else ""
        warnings.append(f"--size {width}x{height} changes its display aspect ratio from "
                        f"{shown:.2f} to {made:.2f}{hint}; --short-side N keeps it")
    return EncodeResult(str(source), "encoded", "; ".join(warnings))


def status_counts(results):
    """{status: how many results have it} for every status, in STATUSES order."""
    return {status: sum(r.status == status for r in results) for status in STATUSES}


def settings_of(folder):
    """The recorded settings of an encoded folder as a dict, or None if it records none."""
    path = Path(folder) / SETTINGS_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: unreadable ({error}); delete it if the folder holds "
                           "videos of one encoding, and encode into it again") from None


def from_recorded(recorded):
    """EncodeSettings from what a folder (or a dataset's index) records."""
    known = {f.name for f in fields(EncodeSettings)}
    return EncodeSettings(**{**{k: v for k, v in recorded.items() if k in known},
                             "size": tuple(recorded["size"])})


def check_settings(target_root, settings):
    """Record what target_root is encoded with, or refuse other settings than recorded:
    a folder of mixed encodings would silently train on both."""
    asked = {**asdict(settings), "size": list(settings.size), "ffmpeg": None}  # any binary
    path = target_root / SETTINGS_NAME
    recorded = settings_of(target_root)
    if recorded is not None:
        differ = {k: (recorded.get(k), v) for k, v in asked.items() if recorded.get(k) != v}
        if differ:
            named = ", ".join(f"{k} {old} (asked: {new})" for k, (old, new) in differ.items())
            raise DatasetError(f"{target_root} was encoded with {named}; use the same options, "
                               "or another folder")
    else:
        try:
            write_json(path, asked)
        except OSError as error:
            raise DatasetError(f"cannot write {path}: {error.strerror or error}") from None


def encode_dataset(source_root, target_root, settings, parallel=ParallelSettings(),
                   select=None):
    """Re-encode every video under source_root into the same tree under target_root (.mp4).

    Returns (results, notes): a result for every file (failures are also written to
    target_root/encode-report.json), and notes (path, message) such as a report that could not
    be written. The ffmpeg binary is settings.ffmpeg or else found (find_ffmpeg);
    parallel.part (i, n): only that share of the videos (discover.select_part). The folder is
    locked for the run (preprocess/lock.py). select: a function of the sorted video ids
    giving those to encode (`--list`), where given.
    """
    settings = replace(settings, ffmpeg=find_ffmpeg(settings.ffmpeg))
    target_root = Path(target_root).resolve()  # links resolved: no way into source_root
    if target_root.is_relative_to(Path(source_root).resolve()):
        raise DatasetError(f"{target_root} is inside {source_root}: a rerun would take the "
                           "encoded files for sources; choose a folder outside it")
    videos = select_part(selected(find_videos(source_root), select), parallel.part)
    with folder_lock(target_root, parallel.part):
        check_settings(target_root, settings)
        if parallel.part is None:  # what killed runs left (a part leaves the others' alone)
            remove_partials(target_root, recursive=True)
        run = lambda video: encode_video(
            video.path, target_root / video.relative.with_suffix(".mp4"), settings)
        results = sorted(run_parallel(run, videos, parallel, "encode",
                                      size=lambda video: file_size(video.path)),
                         key=lambda r: r.source)
    report = target_root / report_name(REPORT_NAME, parallel.part)
    problem = write_report(report, {
        **status_counts(results), "settings": asdict(settings),
        "failures": [{"path": r.source, "reason": r.reason} for r in results if r.status == "failed"],
        "warnings": [{"path": r.source, "warning": r.reason} for r in results
                     if r.status != "failed" and r.reason]})
    return results, [(str(report), problem)] if problem else []
