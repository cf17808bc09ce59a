"""One DataLoader epoch over an image folder; prints samples per second. Usage: root raw|decode workers."""
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


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
    torch.manual_seed(0)
    loader = DataLoader(Folder(root, mode == "decode"), batch_size=32, shuffle=True, num_workers=workers)
    started = time.perf_counter()
    count = 0
    for batch in loader:
        count += len(batch)
    print(f"{count / (time.perf_counter() - started):.1f}")


if __name__ == "__main__":
    main()
