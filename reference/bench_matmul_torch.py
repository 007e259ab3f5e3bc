"""PyTorch reference for `npm run bench -- matmul`: float32 matrix products, timed.

Reads JSON on stdin: {"cases": [{"m", "k", "n", "transpose_b"}], "reps": N, "device": "cpu"|"cuda"};
prints JSON rows {"m", "k", "n", "transpose_b", "ms" (per product, `reps` products back to back,
synchronised once), "device", "torch", "tf32"} on stdout. TF32 stays off (PyTorch's default for
matmul): the tfjs kernels compute in float32.
"""
import json
import sys
import time

import torch


def product_ms(m, k, n, transpose_b, reps, device):
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(m, k, generator=generator).to(device)
    b = torch.randn(*((n, k) if transpose_b else (k, n)), generator=generator).to(device)

    def product():
        return a @ (b.T if transpose_b else b)

    product()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        product()
    if device == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / reps


def main():
    spec = json.load(sys.stdin)
    rows = []
    for case in spec["cases"]:
        ms = product_ms(case["m"], case["k"], case["n"], case["transpose_b"], spec["reps"], spec["device"])
        rows.append({
            **case,
            "ms": ms,
            "device": spec["device"],
            "torch": torch.__version__,
            "tf32": torch.backends.cuda.matmul.allow_tf32,
        })  # fmt: skip
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    main()
