"""The `teamnet` command line, through click's CliRunner (real files, real ffmpeg)."""
import json
from dataclasses import fields

import click
import pytest
from click.testing import CliRunner
from matplotlib.image import imread

import synthetic
from cli import _keep_earlier_demo, main
from preprocess.settings import EncodeSettings, ExtractSettings, ParallelSettings
from teamnet.config import (DataConfig, EvalConfig, ModelConfig, OptimConfig, PredictConfig,
                            TrainConfig)


@pytest.fixture
def runner():
    return CliRunner()


def test_help_names_every_command(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("encode", "extract", "index", "info", "verify", "show", "train", "evaluate",
                    "predict", "demo"):
        assert command in result.output
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
    assert result.exit_code == 2 and "must be even" in result.output
    result = runner.invoke(main, ["info", str(tmp_path)])
    assert result.exit_code == 1 and "no index" in result.output and "teamnet extract" in result.output
    result = runner.invoke(main, ["encode", str(tmp_path), str(tmp_path / "o"), "--ffmpeg", "nope"])
    assert result.exit_code == 1 and "--ffmpeg=nope: no such executable" in result.output


@pytest.mark.slow
def test_demo_then_train_and_evaluate(runner, tmp_path):
    result = runner.invoke(main, ["demo", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "videos           4" in result.output and "classes          3" in result.output
    assert "frames           622" in result.output  # 250 + 132 + 120 + 120
    assert "25 segments, 1 crop of 112 px" in result.output  # the size it trained at
    # it ends with a prediction on a raw clip (H.264 with B-frames) and its CAM picture
    tail = result.output.splitlines()[-4:]
    assert tail[0].endswith(f"bikes.mp4  (class activation maps: {tmp_path / 'cams' / 'bikes.png'})")
    assert [line.split()[0] for line in tail[1:]] == ["1", "2", "3"]
    assert sum(float(line.split()[2].rstrip("%")) for line in tail[1:]) == pytest.approx(100, abs=0.03)
    assert imread(tmp_path / "cams" / "bikes.png").shape[0] > 300  # rows: I-frame, MV, residual
    # train with a test list at another size: the final test evaluation, and evaluate
    # without --data or --input-size, take both from the checkpoint
    data = tmp_path / "extracted"
    (tmp_path / "test.txt").write_text("cycling/bikes\nanimation/bigbuckbunny\n")
    result = runner.invoke(main, [
        "train", "--data", str(data), "--test-list", str(tmp_path / "test.txt"),
        "--output", str(tmp_path / "run64"), "--epochs", "1", "--iframe-arch", "resnet18",
        "--num-segments", "2", "--input-size", "64", "--batch-size", "2", "--val-fraction", "0",
        "--workers", "0", "--pretrained", "none"])
    assert result.exit_code == 0, result.output
    tested = json.loads((tmp_path / "run64" / "test_metrics.json").read_text())
    assert tested["protocol"]["input_size"] == 64 and tested["videos"] == 2
    result = runner.invoke(main, ["evaluate", "--checkpoint", str(tmp_path / "run64" / "best.pt"),
                                  "--num-segments", "3", "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["protocol"] == {"num_segments": 3, "input_size": 64, "crops": 1,
                                  "view": "tsn", "model": "teamnet"}
    # without --list: the run's test list (its config.json)
    assert report["videos"] == 2 and "3 segments, 1 crop of 64 px" in result.output
    assert report["evaluated"] == f"the run's test list {tmp_path / 'test.txt'}"


def test_a_demo_rerun_keeps_the_earlier_run_and_refuses_a_folder_not_its_own(runner, tmp_path,
                                                                             capsys):
    mine = tmp_path / "mine" / "run"  # someone's own run, in the folder given as --workdir
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    result = runner.invoke(main, ["demo", "--workdir", str(mine.parent)])
    assert result.exit_code == 1
    assert f"{mine} is there and is not an earlier demo's run" in result.output
    assert [p.name for p in mine.parent.iterdir()] == ["run"]  # nothing made, nothing lost
    assert (mine / "notes.txt").read_text() == "mine"
    for earlier in ("run.replaced", "run.replaced.2"):  # two earlier demos
        run = tmp_path / "run"
        run.mkdir()
        demo_config = {"data": {"data": str(tmp_path / "extracted")}}
        (run / "config.json").write_text(json.dumps(demo_config))
        _keep_earlier_demo(tmp_path)
        assert not run.exists() and (tmp_path / earlier / "config.json").is_file()
        assert capsys.readouterr().out == f"the earlier demo run is kept as {tmp_path / earlier}\n"


def test_one_name_for_an_output_and_help_for_every_option(runner):
    for name in ("show", "export", "train", "predict"):  # --output, and --out as an alias
        command = main.commands[name]
        (output,) = [p for p in command.params if "--output" in p.opts]
        assert output.opts == ["--output", "--out"], name
    for name, command in main.commands.items():
        for parameter in command.params:
            if isinstance(parameter, click.Option):
                assert parameter.help, f"{name} {parameter.opts[0]} has no help"
    assert "SRC" not in runner.invoke(main, ["predict", "--help"]).output


def test_files_are_named_as_their_folder_was_typed(runner, tmp_path, monkeypatch):
    (tmp_path / "raw" / "walk").mkdir(parents=True)
    synthetic.write_video(tmp_path / "raw" / "walk" / "fine.mkv", synthetic.pan(13, 48, 64, 1, 0))
    (tmp_path / "raw" / "walk" / "broken.mkv").write_bytes(b"not a video" * 100)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["encode", "raw", "enc", "--size", "64x48"])
    assert result.exit_code == 1
    assert "\n  raw/walk/broken.mkv: " in result.output  # not /tmp/.../raw/walk/broken.mkv


# --- every setting defined once ------------------------------------------------------------

COMMAND_SETTINGS = {
    "encode": (EncodeSettings, ParallelSettings),
    "extract": (ExtractSettings, ParallelSettings),
    "train": (DataConfig, ModelConfig, OptimConfig, TrainConfig),
    "evaluate": (EvalConfig,),
    "predict": (PredictConfig,),
}


@pytest.mark.parametrize("name", COMMAND_SETTINGS)
def test_every_setting_is_one_option_with_its_default(name, tmp_path):
    command = main.commands[name]
    settings = [f for cls in COMMAND_SETTINGS[name] for f in fields(cls) if f.metadata]
    options = [p for p in command.params if isinstance(p, click.Option)]
    for setting in settings:
        matching = [p for p in options if p.name == setting.name]
        assert len(matching) == 1, f"{name}: {setting.name} has {len(matching)} options"
        alias = ["--out"] if setting.name == "output" else []  # one name for every output
        assert matching[0].opts == ["--" + setting.name.replace("_", "-"), *alias]
    # the defaults the command resolves (after parsing) are the fields' defaults
    (tmp_path / "f").write_text("")
    required = {"encode": [str(tmp_path), str(tmp_path / "o")],
                "extract": [str(tmp_path), str(tmp_path / "o")],
                "train": ["--data", str(tmp_path)],
                "evaluate": ["--checkpoint", str(tmp_path / "f")],
                "predict": ["--checkpoint", str(tmp_path / "f"), str(tmp_path / "f")]}[name]
    params = command.make_context(name, list(required)).params  # click consumes its list
    for setting in settings:
        if "--" + setting.name not in required:
            assert params[setting.name] == setting.default, setting.name
    assert {"data", "model", "optim"} <= {f.name for f in fields(TrainConfig)}


def test_configs_are_built_by_keyword_from_options(tmp_path):
    params = main.commands["train"].make_context("train", [
        "--data", str(tmp_path), "--input-size", "112", "--team-positions", "res3 res4",
        "--lr-steps", "5,7", "--temporal-shift"]).params
    config = TrainConfig.from_options(params)
    assert config.data.input_size == 112 and config.model.team_positions == ("res3", "res4")
    assert config.optim.lr_steps == (5, 7) and config.model.temporal_shift is True
    assert TrainConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config
    trained = TrainConfig(data=DataConfig(data="DATA", input_size=112))
    assert EvalConfig(checkpoint="c").resolved(trained).input_size == 112  # as trained
    assert EvalConfig(checkpoint="c", input_size=160).resolved(trained).input_size == 160
    assert EvalConfig(checkpoint="c").resolved(trained).data == "DATA"


@pytest.mark.parametrize("args, message", [
    (["--team-positions", "res9"], "res9: choose from stem"),
    (["--lr-steps", "ten"], "is not a list of epochs"),
    (["--model", "vit"], "'vit' is not one of"),
    (["--val-fraction", "2"], "is not in the range"),
])
def test_bad_training_options_are_named(runner, tmp_path, args, message):
    result = runner.invoke(main, ["train", "--data", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(runner, tmp_path, monkeypatch):
    result = runner.invoke(main, ["evaluate", "--checkpoint", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output
    result = runner.invoke(main, ["train", "--data", str(tmp_path)])  # no index.json there
    assert result.exit_code == 1 and result.output.splitlines()[-1].startswith("Error: ")
    assert "no index" in result.output and "Traceback" not in result.output

    def broken(*_args, **_kwargs):
        raise ValueError("a bug, not the user's fault")
    monkeypatch.setattr("preprocess.store.summary", broken)
    result = runner.invoke(main, ["info", str(tmp_path)])
    assert isinstance(result.exception, ValueError)  # not turned into a one-line message


def test_index_rebuilds_what_extract_wrote(runner, tmp_path):
    for name in ("walk/a.mkv", "run/b.mkv"):
        (tmp_path / "raw" / name).parent.mkdir(parents=True, exist_ok=True)
        synthetic.write_video(tmp_path / "raw" / name, synthetic.pan(13, 64, 96, 2, 0))
    assert runner.invoke(main, ["encode", str(tmp_path / "raw"), str(tmp_path / "enc"),
                                "--size", "96x64"]).exit_code == 0
    assert runner.invoke(main, ["extract", str(tmp_path / "enc"), str(tmp_path / "ext"),
                                "--shard-size", "1"]).exit_code == 0
    written = json.loads((tmp_path / "ext" / "index.json").read_text())
    (tmp_path / "ext" / "index.json").unlink()
    result = runner.invoke(main, ["index", str(tmp_path / "ext")])
    assert result.exit_code == 0 and "videos           2" in result.output
    assert json.loads((tmp_path / "ext" / "index.json").read_text()) == written
    (tmp_path / "labels.csv").write_text("walk/a,slow\nrun/b,fast\n")
    result = runner.invoke(main, ["index", str(tmp_path / "ext"), "--labels",
                                  str(tmp_path / "labels.csv")])
    assert result.exit_code == 0
    assert json.loads((tmp_path / "ext" / "index.json").read_text())["classes"] == ["fast", "slow"]
