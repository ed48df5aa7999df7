"""Step timing and progress for a training epoch, kept out of the training loop (as
torchvision's MetricLogger.log_every): data wait against total time, clips/s, running loss."""
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
        self.steps = self.clips = 0
        self.waited = self.elapsed = 0.0

    def __iter__(self):
        start = ready = time.perf_counter()
        for batch in self.bar:
            self.waited += time.perf_counter() - ready
            yield batch
            self.elapsed = time.perf_counter() - start
            if self.context.is_main and self.steps % self.refresh_every == 1:
                # .item() waits for the GPU, so the bar shows the loss only now and then
                self.bar.set_postfix(loss=f"{self.loss.item() / self.steps:.3f}",
                                     **{k: f"{v:.3g}" for k, v in self.rates().items()},
                                     refresh=False)
            ready = time.perf_counter()
        self.elapsed = time.perf_counter() - start

    def add(self, loss, clips):
        self.loss += loss.detach()
        self.steps += 1
        self.clips += clips

    def mean_loss(self):
        return self.loss.item() / max(self.steps, 1)

    def rates(self):
        """clips/s over all ranks (assuming equal shares, which the sampler ensures) and the
        share of the time spent waiting for data."""
        elapsed = max(self.elapsed, 1e-9)
        return {"clips_per_s": self.clips * self.context.world_size / elapsed,
                "data_wait": self.waited / elapsed}
