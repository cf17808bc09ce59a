"""Draws the comparison chart: one panel per measurement, one bar per system (log scale)."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [
    ("ColdSmall", "cold small files/s"),
    ("WarmSmall", "warm small files/s"),
    ("ColdLarge", "cold large MB/s"),
    ("WarmLarge", "warm large MB/s"),
    ("Metadata", "metadata files/s"),
    ("LoaderRaw", "DataLoader raw samples/s"),
    ("LoaderDecode", "DataLoader decode samples/s"),
    ("Accelerators", "accelerators at ≥90%"),
]
COLORS = {"GrainFS FUSE": "#1b7837", "GrainFS SDK": "#5aae61", "direct S3": "#9970ab", "rclone": "#e08214", "s3fs": "#b35806", "local disk": "#4d4d4d"}


def main():
    rows = [r for r in json.load(open(sys.argv[1])) if not r.get("Failure")]
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    for ax, (key, title) in zip(axes.flat, PANELS):
        names = [r["System"] for r in rows if r.get(key)]
        values = [r[key] for r in rows if r.get(key)]
        ax.bar(range(len(names)), values, color=[COLORS.get(n, "#888888") for n in names])
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        if key != "Accelerators" and values and max(values) / max(min(values), 1e-9) > 20:
            ax.set_yscale("log")
        for i, v in enumerate(values):
            ax.annotate(f"{v:,.0f}", (i, v), ha="center", va="bottom", fontsize=7)
    fig.suptitle("GrainFS against the alternatives (same data, same run; higher is better)")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
