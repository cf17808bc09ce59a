"""DataLoader epochs over an image folder; prints samples per second, a line per epoch.

Usage: root raw|decode workers [epochs [none|order [drop|keep [accelerators compute_ms]]]]. With "order" the epochs
are drawn by the same RandomSampler, wrapped in grainfs.torch.EpochOrderSampler, which announces each epoch's order to
the GrainFS mount before it is read (the grainfs package must be importable: PYTHONPATH=Client/Python). With "drop"
the kernel's page cache is dropped before each epoch (root only), so that only the system's own cache holds files
between epochs. With accelerators > 0 the training loop hands each batch to one of that many emulated accelerators,
each busy compute_ms per batch (MLPerf Storage's way: a sleep, no CPU), and waits while all are busy; each line then
also gives the accelerators' utilisation (their busy time over the epoch's time, the last batch's compute included).
"""
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler


class Folder(Dataset):
    def __init__(self, root, decode):
        self.files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs if f.endswith(".jpg"))
        self.decode = decode

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        path = self.files[index]
        if self.decode:
            with Image.open(path) as image:
                return torch.from_numpy(np.asarray(image.convert("RGB").resize((112, 112)), dtype=np.uint8).copy())
        with open(path, "rb") as f:
            return torch.tensor(len(f.read()))


def main():
    root, mode, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    order = len(sys.argv) > 5 and sys.argv[5] == "order"
    drop = len(sys.argv) > 6 and sys.argv[6] == "drop"
    accelerators = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    compute = int(sys.argv[8]) / 1000.0 if len(sys.argv) > 8 else 0.0
    torch.manual_seed(0)
    dataset = Folder(root, mode == "decode")
    sampler = RandomSampler(dataset)
    if order:
        from grainfs.torch import EpochOrderSampler

        sampler = EpochOrderSampler(sampler, lambda i: dataset.files[i], job="bench-%d" % os.getpid())
    loader = DataLoader(dataset, batch_size=32, sampler=sampler, num_workers=workers)
    for _ in range(epochs):
        if drop:
            with open("/proc/sys/vm/drop_caches", "w") as caches:
                caches.write("1")
        started = time.perf_counter()
        count = 0
        free_at = [started] * accelerators
        busy = 0.0
        for batch in loader:
            count += len(batch)
            if accelerators:
                now = time.perf_counter()
                first = min(range(accelerators), key=free_at.__getitem__)
                if free_at[first] > now:
                    time.sleep(free_at[first] - now)  # every accelerator busy: the loader waits
                    now = free_at[first]
                free_at[first] = now + compute
                busy += compute
        ended = max([time.perf_counter()] + free_at)
        rate = count / (ended - started)
        if accelerators:
            print(f"{rate:.1f} {busy / (accelerators * (ended - started)):.3f}", flush=True)
        else:
            print(f"{rate:.1f}", flush=True)


if __name__ == "__main__":
    main()
