"""Beyond one machine: the same work on a real Dask cluster, and split into --part jobs."""
import filecmp
import json
import os

import pytest
from click.testing import CliRunner

import synthetic
from cli import main
from preprocess import store
from preprocess.discover import select_part
from preprocess.errors import SettingsError
from preprocess.parallel import run_parallel
from preprocess.settings import ParallelSettings, parse_part


def worker_pid(_item):
    return os.getpid()


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    for i in range(7):
        (root / f"class{i % 2}").mkdir(exist_ok=True)
        synthetic.write_video(root / f"class{i % 2}" / f"v{i}.mkv",
                              synthetic.pan(26, 64, 96, 1 + i % 3, i % 2, seed=i))
    return root


@pytest.fixture(scope="module")
def reference(raw, tmp_path_factory):
    """encode + extract with the default joblib backend."""
    out = tmp_path_factory.mktemp("reference")
    runner = CliRunner()
    assert runner.invoke(main, ["encode", str(raw), str(out / "enc"), "--size", "96x64"]).exit_code == 0
    assert runner.invoke(main, ["extract", str(out / "enc"), str(out / "ext"), "--shard-size", "2"]).exit_code == 0
    return out


@pytest.fixture(scope="module")
def scheduler():
    """A real scheduler and two worker processes on loopback."""
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def same_datasets(first, second):
    assert store.list_videos(first) == store.list_videos(second)
    a, b = store.load_index(first), store.load_index(second)
    assert a["classes"] == b["classes"] and a["settings"] == b["settings"]
    for video_id in store.list_videos(first):
        x, y = store.read_video(first, video_id), store.read_video(second, video_id)
        assert x["label"] == y["label"]
        for key in ("iframes", "mvs", "residuals", "num_p"):
            assert x[key].tobytes() == y[key].tobytes(), (video_id, key)


@pytest.mark.slow
def test_dask_cluster_gives_the_same_bytes(raw, reference, scheduler, tmp_path):
    pids = set(run_parallel(worker_pid, range(6), ParallelSettings(
        backend="dask", scheduler=scheduler), "pids"))
    assert os.getpid() not in pids and len(pids) >= 1  # the work ran on the cluster's workers
    runner = CliRunner()
    cluster = ["--backend", "dask", "--scheduler", scheduler]
    result = runner.invoke(main, ["encode", str(raw), str(tmp_path / "enc"), "--size", "96x64", *cluster])
    assert result.exit_code == 0, result.output
    for video in (reference / "enc").rglob("*.mp4"):  # the encoder is deterministic
        assert filecmp.cmp(video, tmp_path / "enc" / video.relative_to(reference / "enc"), shallow=False)
    result = runner.invoke(main, ["extract", str(tmp_path / "enc"), str(tmp_path / "ext"),
                                  "--shard-size", "2", *cluster])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "ext").glob("shard-*.h5"))) == 4
    same_datasets(reference / "ext", tmp_path / "ext")


def test_parts_then_index_equal_one_run(reference, tmp_path):
    runner = CliRunner()
    for part in ("2/2", "1/2"):
        result = runner.invoke(main, ["extract", str(reference / "enc"), str(tmp_path / "ext"),
                                      "--shard-size", "2", "--part", part])
        assert result.exit_code == 0, result.output
        assert "teamnet index" in result.output
    names = sorted(p.name for p in (tmp_path / "ext").glob("shard-*.h5"))
    assert names == ["shard-001of002-00000.h5", "shard-001of002-00001.h5",
                     "shard-002of002-00000.h5", "shard-002of002-00001.h5"]
    assert not (tmp_path / "ext" / "index.json").exists()
    assert (tmp_path / "ext" / "extract-report-1of2.json").exists()
    result = runner.invoke(main, ["index", str(tmp_path / "ext")])
    assert result.exit_code == 0 and "videos           7" in result.output
    same_datasets(reference / "ext", tmp_path / "ext")


def test_parts_cover_everything_once():
    videos = list(range(10))
    shares = [select_part(videos, (i, 3)) for i in (1, 2, 3)]
    assert sorted(sum(shares, [])) == videos and shares[0] == [0, 3, 6, 9]
    assert parse_part("3/8") == (3, 8)
    for bad in ("0/4", "5/4", "x", "1-4"):
        with pytest.raises(SettingsError, match="part"):
            parse_part(bad)


def test_predict_on_a_dask_cluster_and_in_parts_gives_the_local_scores(raw, reference,
                                                                        scheduler, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    assert runner.invoke(main, ["train", "--data", str(reference / "ext"), "--output", str(run),
                                "--epochs", "1", "--pretrained", "none", "--iframe-arch",
                                "resnet18", "--num-segments", "2", "--input-size", "32",
                                "--workers", "0", "--val-fraction", "0"]).exit_code == 0
    videos = sorted(str(p) for p in raw.glob("*/*.mkv"))
    common = ["predict", "--checkpoint", str(run / "best.pt"), "--num-segments", "3", "--json"]

    def scores(*options):
        result = runner.invoke(main, [*common, *options])
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        return {line["video"]: line["top"] for line in lines}
    local = scores("--workers", "1", *videos)
    assert sorted(local) == videos
    cluster = scores("--backend", "dask", "--scheduler", scheduler, *videos)
    assert cluster.keys() == local.keys()
    for video, top in cluster.items():
        assert [t["class"] for t in top] == [t["class"] for t in local[video]]
        assert [t["probability"] for t in top] == pytest.approx(
            [t["probability"] for t in local[video]], abs=1e-6)
    parts = {}
    for part in ("1/3", "2/3", "3/3"):  # one predict a node over a shared list
        got = scores("--part", part, "--workers", "1", *videos)
        assert not parts.keys() & got.keys()
        parts.update(got)
    assert parts.keys() == local.keys()
