"""Float64 NumPy / Pillow reference for the explanation maps (SPEC section 1), written from the
specification with dense arrays: Z = U F per pixel, the sparse maps S_c as full H x W maps, the class
heatmaps M_k = sum_c W+_kc S_c, the baseline CAM sum_c W_kc F_c, and the bilinear upsampling of a
heatmap by Pillow's own float ('F' mode) resize.

Reads one JSON document on stdin, writes one JSON document on stdout. Arrays are flat row-major lists.

  {"n", "h", "w", "c", "k", "features": [n*h*w*c, HWC per image], "rotation": [c*c],
   "weight": [k*c] (W+), "bias": [k], "baseline_weight": [k*c], "baseline_bias": [k],
   "upsample": {"image": i, "class": k, "width": W, "height": H}}
    -> {"pooled": [n*c], "argmax": [n*c], "argmin": [n*c],
        "sparse_sums": [n*c] (sum of S_c over pixels), "logits": [n*k],
        "heatmaps": [n*k*h*w], "heatmap_positive": [n*k] (sum of the positive part of M_k),
        "heatmap_negative": [n*k], "cam": [n*k*h*w], "baseline_logits": [n*k],
        "upsampled": [H*W] (M_k of that image, resized to W x H by Pillow's bilinear filter)}
"""

import json
import sys

import numpy as np
from PIL import Image


def main() -> None:
    doc = json.load(sys.stdin)
    n, h, w, c, k = (doc[key] for key in ("n", "h", "w", "c", "k"))
    f = np.asarray(doc["features"], dtype=np.float64).reshape(n, h * w, c)
    u = np.asarray(doc["rotation"], dtype=np.float64).reshape(c, c)
    weight = np.asarray(doc["weight"], dtype=np.float64).reshape(k, c)
    bias = np.asarray(doc["bias"], dtype=np.float64)
    z = f @ u.T  # [n, hw, c]: Z_ij = U F_ij

    argmax = z.argmax(axis=1)  # [n, c]
    argmin = z.argmin(axis=1)
    high = z.max(axis=1)
    low = z.min(axis=1)
    pooled = np.maximum(high, 0) + np.minimum(low, 0)

    # Dense sparse maps S [n, hw, c]: the argmax value where > 0, the argmin value where < 0.
    s = np.zeros_like(z)
    rows = np.arange(n)[:, None]
    cols = np.arange(c)[None, :]
    s[rows, argmax, cols] += np.maximum(high, 0)
    s[rows, argmin, cols] += np.minimum(low, 0)
    heatmaps = np.einsum("kc,npc->nkp", weight, s)  # [n, k, hw]

    baseline_weight = np.asarray(doc["baseline_weight"], dtype=np.float64).reshape(k, c)
    baseline_bias = np.asarray(doc["baseline_bias"], dtype=np.float64)
    cam = np.einsum("kc,npc->nkp", baseline_weight, f)

    up = doc["upsample"]
    grid = heatmaps[up["image"], up["class"]].reshape(h, w).astype(np.float32)
    upsampled = np.asarray(Image.fromarray(grid, mode="F").resize((up["width"], up["height"]), Image.BILINEAR))

    json.dump(
        {
            "pooled": pooled.ravel().tolist(),
            "argmax": argmax.ravel().tolist(),
            "argmin": argmin.ravel().tolist(),
            "sparse_sums": s.sum(axis=1).ravel().tolist(),
            "logits": (pooled @ weight.T + bias).ravel().tolist(),
            "heatmaps": heatmaps.ravel().tolist(),
            "heatmap_positive": np.maximum(heatmaps, 0).sum(axis=2).ravel().tolist(),
            "heatmap_negative": np.minimum(heatmaps, 0).sum(axis=2).ravel().tolist(),
            "cam": cam.ravel().tolist(),
            "baseline_logits": (f.mean(axis=1) @ baseline_weight.T + baseline_bias).ravel().tolist(),
            "upsampled": upsampled.ravel().tolist(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
