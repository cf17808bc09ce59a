"""PyTorch samplers that announce each epoch's order to GrainFS."""

import os
import socket
import warnings

try:
    import torch.utils.data
except ImportError as error:  # pragma: no cover - PyTorch absent
    raise ImportError("grainfs.torch needs PyTorch (pip install torch, or Debian's python3-torch)") from error

from . import GrainFSError, prefetch

__all__ = ["EpochOrderSampler"]


class EpochOrderSampler(torch.utils.data.Sampler):
    """Wraps any sampler (RandomSampler, DistributedSampler, ...) and yields its indices unchanged.

    When an epoch's iteration starts, the wrapped sampler's order is drawn in full, the files of those indices
    (``paths_of(index)``, for example ``lambda i: dataset.samples[i][0]`` for an ImageFolder) are announced to the
    GrainFS mount that holds them, and the indices follow. Each epoch's order replaces the last one of this sampler.
    With a DistributedSampler, each rank announces its own share. If no GrainFS daemon can be reached, a warning is
    given and training goes on unchanged.
    """

    def __init__(self, sampler, paths_of, job=None, window=None, window_share=None, parallel=None):
        self.sampler = sampler
        self.paths_of = paths_of
        self.job = job or "%s-%d-%x" % (socket.gethostname(), os.getpid(), id(self))
        self.window = window
        self.window_share = window_share
        self.parallel = parallel

    def __iter__(self):
        indices = list(iter(self.sampler))
        try:
            prefetch([self.paths_of(i) for i in indices], job=self.job, window=self.window, window_share=self.window_share, parallel=self.parallel)
        except GrainFSError as error:
            warnings.warn("grainfs: this epoch's order was not announced: %s" % error)
        return iter(indices)

    def __len__(self):
        return len(self.sampler)

    def set_epoch(self, epoch):
        """Passes the epoch on to a sampler that takes it (DistributedSampler)."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
