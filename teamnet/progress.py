"""Step timing and progress for a training epoch, kept out of the training loop (as
torchvision's MetricLogger.log_every): data wait against total time, clips/s, running loss.

The wait for an epoch's first batch is also given apart (`first_batch_s`): every loader
worker then starts a whole batch at once, a cost paid once an epoch, which a short epoch's
data-wait share overstates (BENCHMARKS.md, GPU training)."""
import time

import torch
from tqdm import tqdm


class EpochLog:
    """Iterate over it instead of the loader; call add(loss, clips) after each step."""

    def __init__(self, loader, description, context, refresh_every=10):
        self.loader, self.context, self.refresh_every = loader, context, refresh_every
        self.bar = tqdm(loader, desc=description, unit="batch", disable=not context.is_main,
                        dynamic_ncols=True)
        self.loss = torch.zeros((), device=context.device)  # summed on the device: no sync
        self.correct = torch.zeros((), device=context.device, dtype=torch.long)
        self.steps = self.clips = 0
        self.waited = self.elapsed = self.first_wait = 0.0

    def __iter__(self):
        start = ready = time.perf_counter()
        for batch in self.bar:
            self.waited += time.perf_counter() - ready
            if not self.steps:
                self.first_wait = self.waited
            yield batch
            self.elapsed = time.perf_counter() - start
            if self.context.is_main and self.steps % self.refresh_every == 1:
                # .item() waits for the GPU, so the bar shows the loss only now and then
                rates = self.rates()
                self.bar.set_postfix(loss=f"{self.loss.item() / self.steps:.3f}",
                                     **{k: f"{rates[k]:.3g}" for k in ("clips_per_s", "data_wait")},
                                     refresh=False)
            ready = time.perf_counter()
        self.elapsed = time.perf_counter() - start

    def add(self, loss, clips, correct=None):
        """A step's loss, its clips and (optionally) how many of them it classified right."""
        self.loss += loss.detach()
        if correct is not None:
            self.correct += correct.detach()
        self.steps += 1
        self.clips += clips

    def mean_loss(self):
        return self.loss.item() / max(self.steps, 1)

    def rates(self):
        """clips/s over all ranks (assuming equal shares, which the sampler ensures), the
        share of the time spent waiting for data, the seconds to the first batch and in all."""
        elapsed = max(self.elapsed, 1e-9)
        return {"clips_per_s": self.clips * self.context.world_size / elapsed,
                "data_wait": self.waited / elapsed, "first_batch_s": self.first_wait,
                "seconds": self.elapsed}
