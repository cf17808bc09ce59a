"""One PyTorch DataLoader epoch over a folder of files through a GrainFS mount, every sample checked against the
source folder's bytes (SHA-256). Prints a JSON line: samples, wrong, errors, seconds, the longest wait of the
training loop for a batch, and its median.

Usage: epoch_check.py MOUNTED_ROOT SOURCE_ROOT [workers [compute_ms]]. compute_ms is how long the loop works on each
batch (an accelerator's step), so that the epoch lasts while faults are injected; it is not counted as a wait.
"""
import hashlib
import json
import os
import statistics
import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler


class Files(Dataset):
    def __init__(self, root, source):
        self.names = sorted(os.path.relpath(os.path.join(dp, f), source) for dp, _, fs in os.walk(source) for f in fs)
        self.root = root

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        try:
            with open(os.path.join(self.root, self.names[index]), "rb") as f:
                return index, hashlib.sha256(f.read()).hexdigest(), ""
        except OSError as e:
            return index, "", f"{self.names[index]}: {e}"


def main():
    mounted, source = sys.argv[1], sys.argv[2]
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    compute = (int(sys.argv[4]) if len(sys.argv) > 4 else 0) / 1000.0
    dataset = Files(mounted, source)
    expected = []
    for name in dataset.names:
        with open(os.path.join(source, name), "rb") as f:
            expected.append(hashlib.sha256(f.read()).hexdigest())
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_size=32, sampler=RandomSampler(dataset), num_workers=workers,
                        collate_fn=lambda batch: batch)
    samples = wrong = 0
    errors = []
    waits = []
    started = time.perf_counter()
    asked = time.perf_counter()
    for batch in loader:
        waits.append(time.perf_counter() - asked)
        for index, digest, error in batch:
            samples += 1
            if error:
                errors.append(error)
            elif digest != expected[index]:
                wrong += 1
        if compute:
            time.sleep(compute)
        asked = time.perf_counter()
    print(json.dumps({
        "samples": samples, "expected": len(dataset), "wrong": wrong, "errors": len(errors),
        "first_errors": errors[:3], "seconds": round(time.perf_counter() - started, 1),
        "longest_wait_ms": round(max(waits) * 1000), "median_wait_ms": round(statistics.median(waits) * 1000, 1),
    }), flush=True)
    return 0 if samples == len(dataset) and wrong == 0 and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
