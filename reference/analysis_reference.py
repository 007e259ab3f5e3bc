"""Dense float64 NumPy reference for the paper's analyses (SPEC section 2).

Reads one JSON document on stdin, writes one JSON document on stdout. Tasks:

  {"task": "rv", "shape": [N, H, W, C], "features": [...N*H*W*C, HWC per image...],
   "pairs": [[c, d], ...]}
    -> {"values": [RV or null per pair], "mean": float or null, "constant_channels": int}

  {"task": "ablation", "fraction": 0.95, and either
     "contributions": [[a_k0, ..., a_kC-1] per image]
   or "shape", "features", "weights": [...K*C...], "classes": K, "labels": [...], "head": "infodisent"|"baseline"}
    -> {"needed": {...}, "used": {...}} where each distribution is
       {"values", "mean", "median", "edges", "counts"}

  {"task": "bench", "images", "height", "width", "channels", "pairs", "classes", "seed", "fraction"}
    -> seconds taken by each analysis on generated data (generation not timed)

Everything is computed from the whole N x HW matrices at once, independently of the streaming
TypeScript implementation.
"""

import json
import os
import sys
import time

# One BLAS thread, like the single-threaded TypeScript side; threaded small matmuls also thrash
# on a shared machine (measured 10x slower here).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def centred_channels(features):
    """(N, H, W, C) -> (C, N, HW): each channel's N x HW matrix, centred over images."""
    n, h, w, c = features.shape
    x = features.reshape(n, h * w, c).astype(np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def rv_values(features, pairs):
    """RV(X, Y) = tr(X^T Y Y^T X) / sqrt(tr((X^T X)^2) tr((Y^T Y)^2)), literally, for every pair."""
    x = centred_channels(features)
    gram = x.transpose(0, 2, 1) @ x
    self_trace = np.trace(gram @ gram, axis1=1, axis2=2)
    c, d = np.asarray(pairs).T
    # One batched product for all pairs rather than a Python loop of small matmuls.
    cross = x[c].transpose(0, 2, 1) @ x[d]
    numerator = np.trace(cross @ cross.transpose(0, 2, 1), axis1=1, axis2=2)
    denominator = np.sqrt(self_trace[c] * self_trace[d])
    values = [float(n / m) if m > 0 else None for n, m in zip(numerator, denominator)]
    return values, int(np.sum(self_trace == 0))


def histogram_edges(channels):
    """Bins over 0..C of width 1, 2, 5 x 10^k: the smallest giving at most 64 bins."""
    needed = (channels + 1) / 64
    scale = 1
    while True:
        for factor in (1, 2, 5):
            if factor * scale >= needed:
                width = factor * scale
                bins = int(np.ceil((channels + 1) / width))
                return np.arange(bins + 1) * width
        scale *= 10


def distribution(values, channels):
    edges = histogram_edges(channels)
    counts, _ = np.histogram(values, bins=edges)
    return {
        "values": values.tolist(),
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "edges": edges.tolist(),
        "counts": counts.tolist(),
    }


def channels_needed(contributions, fraction):
    """Per row: smallest m whose top-m positive contributions reach fraction of their total (0 if none)."""
    positive = np.where(contributions > 0, contributions, 0.0)
    ordered = -np.sort(-positive, axis=1)
    running = np.cumsum(ordered, axis=1)
    total = running[:, -1]
    needed = np.sum(running < (fraction * total)[:, None], axis=1) + 1
    return np.where(total > 0, needed, 0), np.sum(contributions > 0, axis=1)


def pooled(features, head):
    if head == "infodisent":
        return np.maximum(0, features.max(axis=(1, 2))) - np.maximum(0, (-features).max(axis=(1, 2)))
    return features.mean(axis=(1, 2))


def head_contributions(features, weights, labels, head):
    return weights[labels] * pooled(features, head)


def generated(images, height, width, channels, seed):
    """ReLU maps with a shared per-image blob, so channels of like-signed response correlate."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    centre = rng.uniform(0, [height, width], size=(images, 2))
    blob = np.exp(-((ys - centre[:, 0, None, None]) ** 2 + (xs - centre[:, 1, None, None]) ** 2) / 2)
    response = rng.uniform(-1, 1, channels).astype(np.float32)
    noise = rng.random((images, height, width, channels), dtype=np.float32) - 0.5
    return np.maximum(0, blob[..., None].astype(np.float32) * response + 0.5 * noise)


def bench(task):
    channels = task["channels"]
    features = generated(task["images"], task["height"], task["width"], channels, task["seed"])
    rng = np.random.default_rng(task["seed"] + 1)
    total_pairs = channels * (channels - 1) // 2
    picks = rng.choice(total_pairs, size=min(task["pairs"], total_pairs), replace=False)
    all_pairs = np.array(np.triu_indices(channels, 1)).T
    pairs = all_pairs[np.sort(picks)].tolist()
    start = time.perf_counter()
    rv_values(features, pairs)
    rv_seconds = time.perf_counter() - start

    labels = rng.integers(0, task["classes"], task["images"])
    w_plus = rng.random((task["classes"], channels), dtype=np.float32)
    w_base = rng.standard_normal((task["classes"], channels), dtype=np.float32)
    start = time.perf_counter()
    for head, weights in (("infodisent", w_plus), ("baseline", w_base)):
        contributions = head_contributions(features, weights.astype(np.float64), labels, head)
        channels_needed(contributions, task["fraction"])
    ablation_seconds = time.perf_counter() - start
    return {"images": task["images"], "rv_seconds": rv_seconds, "ablation_seconds": ablation_seconds}


def main():
    task = json.load(sys.stdin)
    kind = task["task"]
    if kind == "rv":
        features = np.asarray(task["features"], dtype=np.float64).reshape(task["shape"])
        values, constant = rv_values(features, task["pairs"])
        defined = [v for v in values if v is not None]
        out = {"values": values, "mean": float(np.mean(defined)) if defined else None, "constant_channels": constant}
    elif kind == "ablation":
        if "contributions" in task:
            contributions = np.asarray(task["contributions"], dtype=np.float64)
        else:
            features = np.asarray(task["features"], dtype=np.float64).reshape(task["shape"])
            weights = np.asarray(task["weights"], dtype=np.float64).reshape(task["classes"], -1)
            contributions = head_contributions(features, weights, np.asarray(task["labels"]), task["head"])
        needed, used = channels_needed(contributions, task["fraction"])
        channels = contributions.shape[1]
        out = {
            "needed": distribution(needed, channels),
            "used": distribution(used, channels),
        }
    elif kind == "bench":
        out = bench(task)
    else:
        raise ValueError(f"unknown task {kind!r}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
