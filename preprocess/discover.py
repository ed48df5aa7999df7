"""Finding the videos of a dataset folder and naming them.

A video's id is its path relative to the dataset root without the extension, with '/'
separators ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"); its class defaults to the name of the
folder that holds it.
"""
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".webm", ".mov", ".flv", ".m4v"})
PARTIAL_SUFFIX = ".partial"  # temporary outputs; never listed as inputs


class DatasetError(Exception):
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


def find_videos(root):
    """All videos under root (recursive, extensions in any case), sorted by id.

    Raises DatasetError if root is not a folder, holds no video, or if two files would share
    an id (such as clip.avi and clip.mp4 side by side).
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    videos = sorted(
        (Video(path, path.relative_to(root)) for path in root.rglob("*")
         if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file()
         and not path.name.startswith(".")),
        key=lambda video: video.video_id)
    if not videos:
        extensions = ", ".join(sorted(e[1:] for e in VIDEO_EXTENSIONS))
        raise DatasetError(f"{root}: no videos ({extensions}) in this folder or below it")
    for first, second in zip(videos, videos[1:]):
        if first.video_id == second.video_id:
            raise DatasetError(f"{first.path} and {second.path} would share the id "
                               f"{first.video_id!r}; rename or remove one of them")
    return videos
