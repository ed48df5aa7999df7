"""Training throughput with the real loader and model: clips/s and the share of time spent
waiting for data, as `teamnet train` runs them (train_one_epoch, DataLoader workers, bf16 and
channels_last on GPUs).

    python benchmarks/train_speed.py [--data DIR] [--model teamnet] [--batch 80] [--workers 8]

Without --data, the sample clips are encoded and extracted first (benchmarks/loader_speed.py
does the same). The dataset is repeated to --clips clips a pass; one pass is run to warm up
(workers, cuDNN's kernel choice), then --passes are timed. The data-wait share is given for
the whole pass and from its first batch on (every worker starts a whole batch at an epoch's
start: a cost paid once an epoch, large in a pass of few steps).
"""
import argparse
import json
import tempfile
from pathlib import Path

import torch

from loader_speed import sample_data
from preprocess.store import load_index
from teamnet.config import ARCHS, MODELS, ModelConfig
from teamnet.data import ClipDataset, make_loader
from teamnet.distributed import setup
from teamnet.model import build_model
from teamnet.train import epoch_batches, parameter_groups, train_one_epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--model", choices=MODELS, default="teamnet")
    parser.add_argument("--iframe-arch", choices=ARCHS, default="resnet50")
    parser.add_argument("--clips", type=int, default=320)
    parser.add_argument("--batch", type=int, default=80)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch's intra-op threads [default: torch's own, one a core]")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = args.data or sample_data(Path(tempfile.mkdtemp(prefix="teamnet-train-speed-")))
    context = setup(args.device)
    cuda = context.device.type == "cuda"
    torch.backends.cudnn.benchmark = True
    index = load_index(data)
    videos = [(v["id"], v["label"]) for v in index["videos"]]
    # from scratch: the speed is the same, and a GPU node may not reach the ImageNet weights
    config = ModelConfig(model=args.model, iframe_arch=args.iframe_arch, pretrained="none")
    model = build_model(config, len(index["classes"]))
    model = model.to(context.device, memory_format=torch.channels_last if cuda else torch.preserve_format)
    dataset = ClipDataset(data, (videos * args.clips)[:args.clips], model.modalities,
                          args.segments, args.size, train=True)
    loader = make_loader(dataset, args.batch, args.workers, train=True, pin_memory=cuda)
    optimizer = torch.optim.SGD(parameter_groups(model, 5e-4, 0.001), lr=0.001, momentum=0.9)
    passes = []
    for epoch in range(args.passes + 1):
        metrics = train_one_epoch(model, model, epoch_batches(loader, epoch), optimizer, context,
                                  20.0, epoch)
        if epoch:  # the first pass warms up
            passes.append(metrics)
    mean = lambda key: sum(p[key] for p in passes) / len(passes)  # noqa: E731
    waited = sum(p["data_wait"] * p["seconds"] - p["first_batch_s"] for p in passes)
    after_first = sum(p["seconds"] - p["first_batch_s"] for p in passes)
    result = {
        "device": torch.cuda.get_device_name() if cuda else "CPU", "torch": torch.__version__,
        "clips_per_s": mean("clips_per_s"), "data_wait": mean("data_wait"),
        "first_batch_s": mean("first_batch_s"),
        # the share once the first batch is in: what an epoch of many steps approaches
        "data_wait_after_first_batch": waited / after_first,
        "settings": {**vars(args), "data": str(data)}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
