"""The `teamnet` command line, through click's CliRunner (real files, real ffmpeg)."""
import json

import pytest
from click.testing import CliRunner

import synthetic
from cli import main


@pytest.fixture
def runner():
    return CliRunner()


def test_help_names_every_command(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("encode", "extract", "info", "demo"):
        assert command in result.output
    for command in ("encode", "extract", "info"):
        assert runner.invoke(main, [command, "--help"]).exit_code == 0


def test_encode_extract_info(runner, tmp_path):
    for name in ("walk/a.mkv", "walk/b.mkv", "run/c.mkv"):
        (tmp_path / "raw" / name).parent.mkdir(parents=True, exist_ok=True)
        synthetic.write_video(tmp_path / "raw" / name, synthetic.pan(25, 64, 96, 2, 0))
    (tmp_path / "raw" / "run" / "broken.avi").write_bytes(b"RIFF....AVI garbage")
    result = runner.invoke(main, ["encode", str(tmp_path / "raw"), str(tmp_path / "enc"),
                                  "--size", "96x64", "--workers", "2"])
    assert result.exit_code == 1  # one file failed; it is named with its reason
    assert "encoded 3, already done 0, failed 1" in result.output
    assert "broken.avi: no video stream" in result.output
    result = runner.invoke(main, ["extract", str(tmp_path / "enc"), str(tmp_path / "ext"),
                                  "--shard-size", "2", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "videos           3" in result.output and "shards           2" in result.output
    result = runner.invoke(main, ["info", str(tmp_path / "ext"), "--json"])
    totals = json.loads(result.output.strip().splitlines()[-1])
    assert {k: totals[k] for k in ("videos", "classes", "shards", "gops", "frames",
                                   "stored_p_frames")} == {
        "videos": 3, "classes": 2, "shards": 2, "gops": 9, "frames": 75, "stored_p_frames": 66}
    assert totals["bytes"] > 0 and totals["bytes_per_frame"] == totals["bytes"] / 75


def test_errors_are_one_clear_line(runner, tmp_path):
    result = runner.invoke(main, ["encode", str(tmp_path), str(tmp_path / "o"), "--size", "340"])
    assert result.exit_code == 2 and "is not WIDTHxHEIGHT" in result.output
    result = runner.invoke(main, ["encode", str(tmp_path), str(tmp_path / "o"), "--size", "341x256"])
    assert result.exit_code == 2 and "must be positive and even" in result.output
    result = runner.invoke(main, ["info", str(tmp_path)])
    assert result.exit_code == 1 and "no index" in result.output and "teamnet extract" in result.output
    result = runner.invoke(main, ["encode", str(tmp_path), str(tmp_path / "o"), "--ffmpeg", "nope"])
    assert result.exit_code == 1 and "--ffmpeg=nope: no such executable" in result.output


def test_demo_runs_on_the_bundled_clips(runner, tmp_path):
    result = runner.invoke(main, ["demo", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "videos           4" in result.output and "classes          3" in result.output
    assert "frames           622" in result.output  # 250 + 132 + 120 + 120
