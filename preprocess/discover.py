"""Finding the videos of a dataset folder and naming them.

A video's id is its path relative to the dataset root without the extension, with '/'
separators ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"); its class defaults to the name of the
folder that holds it.
"""
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import TeamnetError

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".webm", ".mov", ".flv", ".m4v"})
PARTIAL_SUFFIX = ".partial"  # temporary outputs; never listed as inputs


class DatasetError(TeamnetError):
    """The dataset as a whole is unusable (missing folder, clashing ids)."""


@dataclass(frozen=True)
class Video:
    path: Path  # absolute
    relative: Path  # to the dataset root

    @property
    def video_id(self):
        return self.relative.with_suffix("").as_posix()

    @property
    def folder_class(self):
        return self.path.parent.name


def strip_video_extension(name):
    """"class/clip.avi" -> "class/clip" (any case of a video extension); other names unchanged."""
    suffix = Path(name).suffix
    return name[:-len(suffix)] if suffix.lower() in VIDEO_EXTENSIONS else name


def select_part(videos, part):
    """The videos of part (i, n): every n-th of the sorted list from the i-th, so that n jobs
    given 1/n ... n/n cover the dataset once, whatever order they run in."""
    if part is None:
        return videos
    index, count = part
    return videos[index - 1::count]


def selected(videos, select=None):
    """The videos whose ids select (a function of the sorted ids: a list's) keeps; all of
    them without one. Selecting before splitting into parts keeps the parts disjoint."""
    if select is None:
        return videos
    keep = set(select([video.video_id for video in videos]))
    return [video for video in videos if video.video_id in keep]


def report_name(name, part):
    """encode-report.json, or encode-report-2of8.json for part 2 of 8."""
    if part is None:
        return name
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}-{part[0]}of{part[1]}{dot}{suffix}"


def file_size(path):
    """A file's size in bytes; 0 where it cannot be read (its task will report why)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _is_file(path):
    """Whether a path found under a dataset names a file; one that cannot even be looked at
    (longer than PATH_MAX, say) is listed, so that its task names it with the reason."""
    try:
        return path.is_file()
    except OSError:
        return True


def find_videos(root):
    """All videos under root (recursive, extensions in any case), sorted by id.

    Raises DatasetError if root is not a folder, holds no video, or if two files would share
    an id (such as clip.avi and clip.mp4 side by side).
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    # A folder that cannot be listed (a path longer than PATH_MAX, no permission) is listed
    # itself, so that its task names it with the reason instead of the walk stopping.
    unlisted = []
    paths = [Path(folder) / name
             for folder, _, names in os.walk(root, onerror=lambda e: unlisted.append(e.filename))
             for name in names]
    videos = sorted(
        [Video(path, path.relative_to(root)) for path in paths
         if path.suffix.lower() in VIDEO_EXTENSIONS and _is_file(path)
         and not path.name.startswith(".")]
        + [Video(Path(folder), Path(folder).relative_to(root)) for folder in unlisted
           if Path(folder) != root],
        key=lambda video: video.video_id)
    if not videos:
        extensions = ", ".join(sorted(e[1:] for e in VIDEO_EXTENSIONS))
        raise DatasetError(f"{root}: no videos ({extensions}) in this folder or below it")
    for first, second in zip(videos, videos[1:]):
        if first.video_id == second.video_id:
            raise DatasetError(f"{first.path} and {second.path} would share the id "
                               f"{first.video_id!r}; rename or remove one of them")
    return videos
