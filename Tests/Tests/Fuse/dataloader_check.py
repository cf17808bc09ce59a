"""Reads an image-folder dataset with a PyTorch DataLoader from two roots (a GrainFS mount and the source folder)
and checks that both give the same batches: raw bytes, and JPEG decode + resize. Prints one line: ok <samples>."""
import os
import sys

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


class ImageFolderBytes(Dataset):
    def __init__(self, root, decode):
        self.samples = []
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        for label, name in enumerate(classes):
            folder = os.path.join(root, name)
            for file in sorted(os.listdir(folder)):
                self.samples.append((os.path.join(folder, file), label))
        self.decode = decode

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        if self.decode:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.uint8)
            return torch.from_numpy(array.copy()), label
        with open(path, "rb") as f:
            data = f.read()
        return torch.tensor([len(data), sum(data[:4096]) % 1000003]), label


def batches(root, decode):
    loader = DataLoader(ImageFolderBytes(root, decode), batch_size=16, shuffle=False, num_workers=2)
    return [(x.clone(), y.clone()) for x, y in loader]


def main():
    mounted, source = sys.argv[1], sys.argv[2]
    count = 0
    for decode in (False, True):
        a, b = batches(mounted, decode), batches(source, decode)
        if len(a) != len(b):
            print(f"different batch counts {len(a)} vs {len(b)}")
            return 1
        for (xa, ya), (xb, yb) in zip(a, b):
            if not torch.equal(xa, xb) or not torch.equal(ya, yb):
                print("batches differ")
                return 1
            count += len(ya)
    print(f"ok {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
