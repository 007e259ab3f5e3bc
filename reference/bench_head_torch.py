"""PyTorch reference for `npm run bench -- head`: the same InfoDisent training step, timed.

Reads JSON on stdin: {"channels": [...], "batch": 64, "height": 7, "width": 7, "classes": 200,
"steps": 5, "warmup": 2, "device": "cpu"|"cuda", "threads": N|null}; prints JSON rows
{"channels", "step_ms" (median of steps each synchronised), "pipelined_step_ms" (steps back to back,
synchronised once), "device", "torch"} on stdout.
The step: U = matrix_exp(A - A^T), Z = X U^T per pixel, sparse pooling, non-negative linear layer,
cross-entropy, backward, AdamW, W clamped at 0 -- SPEC section 1.
"""
import json
import sys
import time

import torch


def step_time(channels, batch, pixels, classes, steps, warmup, device):
    generator = torch.Generator(device="cpu").manual_seed(0)
    features = torch.randn(batch * pixels, channels, generator=generator).to(device)
    labels = torch.randint(0, classes, (batch,), generator=generator).to(device)
    a = torch.zeros(channels, channels, device=device, requires_grad=True)
    w = (torch.rand(classes, channels, generator=generator) / channels**0.5).to(device).requires_grad_(True)
    b = torch.zeros(classes, device=device, requires_grad=True)
    optimizer = torch.optim.AdamW(
        [
            {"params": [a], "lr": 5e-4, "weight_decay": 0.0},
            {"params": [w], "lr": 1e-2, "weight_decay": 1e-4},
            {"params": [b], "lr": 1e-2, "weight_decay": 0.0},
        ]
    )

    def one_step():
        optimizer.zero_grad(set_to_none=True)
        u = torch.linalg.matrix_exp(a - a.T)
        z = (features @ u.T).view(batch, pixels, channels)
        pooled = torch.relu(z.amax(dim=1)) - torch.relu(-z.amin(dim=1))
        loss = torch.nn.functional.cross_entropy(pooled @ w.T + b, labels)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            w.clamp_(min=0)

    for _ in range(warmup):
        one_step()
    if device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        one_step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    times.sort()
    # The same number of steps back to back, synchronised once: training's pace on an asynchronous device.
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device == "cuda":
        torch.cuda.synchronize()
    pipelined = (time.perf_counter() - start) / steps
    return 1000 * times[len(times) // 2], 1000 * pipelined


def main():
    spec = json.load(sys.stdin)
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    rows = []
    for channels in spec["channels"]:
        ms, pipelined_ms = step_time(
            channels,
            spec["batch"],
            spec["height"] * spec["width"],
            spec["classes"],
            spec["steps"],
            spec["warmup"],
            spec["device"],
        )
        rows.append({
            "channels": channels,
            "step_ms": ms,
            "pipelined_step_ms": pipelined_ms,
            "device": spec["device"],
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        })  # fmt: skip
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    main()
