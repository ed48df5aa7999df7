"""The memory `teamnet train` says a step needs against what a run really takes: the peak
resident memory of a one-epoch CPU run (in a process of its own, loader workers 0 so that one
process holds everything), for a few model and clip sizes.

    python benchmarks/train_memory.py [--data DIR]

Without --data, the sample clips are encoded and extracted first (as loader_speed.py does).
Prints one JSON object: each setting's estimate (total and parts) and measured peak.
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = {  # name: `teamnet train` options
    "ResNet-18, 112 px, T=4, 4 clips": ["--iframe-arch", "resnet18", "--input-size", "112",
                                        "--num-segments", "4"],
    "ResNet-50, 160 px, T=4, 4 clips": ["--input-size", "160", "--num-segments", "4"],
    "ResNet-50, 224 px, T=8, 4 clips": ["--input-size", "224", "--num-segments", "8"],
}
RUN = """
import resource, sys
from click.testing import CliRunner
from cli import main
result = CliRunner().invoke(main, sys.argv[1:])
print(result.output)
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def measure(data, options, work):
    done = subprocess.run(
        [sys.executable, "-c", RUN, "train", "--data", str(data), "--output", str(work),
         "--epochs", "1", "--val-fraction", "0", "--batch-size", "4", "--workers", "0",
         "--pretrained", "none", "--device", "cpu", *options],
        capture_output=True, text=True, cwd=Path(__file__).parent.parent, check=True)
    estimate = re.search(r"memory: about ([\d.]+) GiB a step \(([^;]+);", done.stdout)
    peak = int(re.search(r"PEAK (\d+)", done.stdout).group(1))
    return {"estimate_gib": float(estimate.group(1)), "parts": estimate.group(2),
            "measured_peak_gib": round(peak / 2**30, 2),
            "ratio": round(float(estimate.group(1)) / (peak / 2**30), 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="an extracted dataset [default: the sample clips, extracted]")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="teamnet-train-memory-"))
    if args.data is None:
        from loader_speed import sample_data
        args.data = sample_data(work)
    results = {name: measure(args.data, options, work / f"run{n}")
               for n, (name, options) in enumerate(SETTINGS.items())}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
