"""Training and testing runs on the tests' synthetic motion sets (tests/motion_dataset.py),
shared by the benchmarks that compare models and options on them.

Every run: ResNet-18 branches from scratch (`--pretrained none`), T=4, 32x32, batch 8, one
loader process; testing with 4 segments. CPU-sized sets: they show whether an option or a model
learns motion here, not how it does on UCF-101 or Kinetics.
"""
import json
import sys
import traceback
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
import motion_dataset  # noqa: E402
from cli import main  # noqa: E402

__all__ = ["motion_dataset", "invoke", "train", "test", "BASE"]

BASE = ["--pretrained", "none", "--iframe-arch", "resnet18", "--num-segments", "4",
        "--input-size", "32", "--batch-size", "8", "--workers", "0"]


def invoke(args):
    """Run one `teamnet` command in this process; its output, or exit with it (and the
    traceback of an unexpected error) on failure."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exit_code != 0:
        unexpected = result.exc_info and not isinstance(result.exception, SystemExit)
        raise SystemExit(result.output + ("".join(traceback.format_exception(
            *result.exc_info)) if unexpected else "") + f"(teamnet {args[0]} failed)")
    return result.output


def train(data, train_list, run, *options):
    """Train into the folder run; returns its metrics.jsonl as a list of dicts."""
    invoke(["train", "--data", data, "--train-list", train_list, "--output", run, *BASE,
            *options])
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def test(run, test_list):
    """`teamnet evaluate --json` of run/best.pt on test_list: the report as a dict."""
    output = invoke(["evaluate", "--checkpoint", Path(run) / "best.pt", "--list", test_list,
                     "--num-segments", "4", "--workers", "0", "--json"])
    return json.loads(output.strip().splitlines()[-1])
