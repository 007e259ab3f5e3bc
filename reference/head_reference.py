"""Float64 NumPy reference for the classification heads (SPEC section 1).

Written from the specification, independently of the TypeScript code: the matrix exponential of a
skew-symmetric S comes from the eigendecomposition of the Hermitian matrix iS (not from a Taylor
polynomial), its reverse pass from the divided differences of exp on that spectrum (the Daleckii-Krein
formula), and both are cross-checked against a general-matrix Taylor expm and the block-matrix Frechet
derivative, and against central finite differences.

Reads one JSON document on stdin, writes one JSON document on stdout. Matrices are flat row-major lists.

  {"task": "norms", "matrices": [{"n": n, "data": [...]}, ...]}
    -> {"spectral": [||M||_2 per matrix]}

  {"task": "expm", "cases": [{"n": n, "s": [...skew S...], "grad_out": [...G...] (optional),
                              "fd_entries": [[i, j], ...] (optional)}]}
    -> {"cases": [{"value": expm(S), "spectral_norm": ||S||_2, "orthogonality": max|E^T E - I|,
                   "taylor_difference": max|expm_eig - expm_taylor|,
                   and with grad_out: "grad": d<G, expm(S)>/dS (every entry of S free),
                   "block_difference": max|grad - block-matrix Frechet adjoint|,
                   "fd": [central difference of <G, expm(S)> in each fd entry]}]}

  {"task": "infodisent", "n", "hw", "c", "k", "features": [n*hw*c, HWC per image], "labels",
   "a": [c*c], "base": [c*c], "weight": [k*c], "bias": [k],
   "fd_a_entries": [[i, j], ...] | "all" (optional), "fd_linear": bool (optional),
   "adam": {"groups": {"rotation"|"weight"|"bias": {"lr", "weight_decay"}},
            "beta1", "beta2", "eps"} (optional)}
    -> {"rotation", "logits", "pooled", "argmax", "argmin", "loss",
        "grad": {"rotation", "weight", "bias"}, "fd": {...same keys, entries requested...},
        "step": {"rotation", "weight", "weight_unprojected", "bias", "base_folded", "clipped", "logits"}}

  {"task": "baseline", "n", "hw", "c", "k", "features", "labels", "weight", "bias",
   "fd_linear": bool (optional), "adam": {...as above, groups "weight" and "bias"...} (optional)}
    -> {"pooled", "logits", "loss", "grad": {"weight", "bias"}, "fd": {...}, "step": {"weight", "bias"}}

  {"task": "adam", "params": {name: [...]}, "grads": [{name: [...]}, ... one per step],
   "lr_scales": [... one per step] (optional), "groups", "beta1", "beta2", "eps"}
    -> {"steps": [{"params": {...}, "m": {...}, "v": {...}} per step]}
"""

import json
import os
import sys

# OpenBLAS's threads made a 256x256 complex eigh take 11 s instead of 0.06 s on the 2-core test machine
# (the matrices here are small): one thread. Must be set before NumPy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Matrix exponential and its derivative


def expm_skew(s):
    """expm(S) for skew-symmetric S: iS is Hermitian, iS = V diag(mu) V^H, so expm(S) = V diag(e^{-i mu}) V^H."""
    mu, v = np.linalg.eigh(1j * s)
    return ((v * np.exp(-1j * mu)) @ v.conj().T).real


def expm_skew_adjoint(s, g):
    """Gradient of <G, expm(S)> with respect to every entry of S: the Frechet derivative L(S^T, G).

    S^T = -S = V diag(i mu) V^H, and for a normal matrix L(X, G) = V ((V^H G V) o Phi) V^H with Phi the
    divided differences of exp at the eigenvalues; for i mu_j, i mu_k that is
    e^{i (mu_j + mu_k) / 2} sinc((mu_j - mu_k) / 2), which has no cancellation when mu_j ~ mu_k.
    """
    mu, v = np.linalg.eigh(1j * s)
    # S^T = -S has eigenvalues +i mu with the same eigenvectors.
    half_sum = 0.5 * (mu[:, None] + mu[None, :])
    half_diff = 0.5 * (mu[:, None] - mu[None, :])
    phi = np.exp(1j * half_sum) * np.sinc(half_diff / np.pi)
    inner = v.conj().T @ g @ v
    return (v @ (inner * phi) @ v.conj().T).real


def expm_taylor(m, degree=18):
    """expm of a general matrix: scaling to 1-norm <= 1/4 and a degree-18 Taylor polynomial
    (remainder below 1e-28 relative), then squaring."""
    n = m.shape[0]
    norm = np.abs(m).sum(axis=0).max()
    squarings = max(0, int(np.ceil(np.log2(norm / 0.25)))) if norm > 0 else 0
    x = m / 2.0**squarings
    eye = np.eye(n)
    e = eye.copy()
    for k in range(degree, 0, -1):
        e = eye + (x @ e) / k
    for _ in range(squarings):
        e = e @ e
    return e


def frechet_block(x, e):
    """L(X, E) as the top-right block of expm([[X, E], [0, X]])."""
    n = x.shape[0]
    block = np.zeros((2 * n, 2 * n))
    block[:n, :n] = x
    block[:n, n:] = e
    block[n:, n:] = x
    return expm_taylor(block)[:n, n:]


def fd_step(scale):
    # Central differences: truncation ~ h^2, rounding ~ eps / h; h ~ 1e-5 balances both near 1e-10.
    return 1e-5 * max(1.0, scale)


# ---------------------------------------------------------------------------------------------
# Heads


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy and its gradient with respect to the logits [n, k]."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = logits.shape[0]
    loss = -log_prob[np.arange(n), labels].mean()
    grad = np.exp(log_prob)
    grad[np.arange(n), labels] -= 1.0
    return loss, grad / n


def sparse_pool(z):
    """z: [n, hw, c]. p_c = max(0, max_ij Z_ijc) - max(0, max_ij(-Z_ijc)), with the arg-extremes."""
    top = z.max(axis=1)
    bottom = z.min(axis=1)
    pooled = np.maximum(0.0, top) - np.maximum(0.0, -bottom)
    return pooled, top, bottom, z.argmax(axis=1), z.argmin(axis=1)


def infodisent_loss(features, labels, a, base, weight, bias):
    """Loss only (for finite differences): U = expm(A - A^T) B, Z = U F per pixel, sparse pool, W p + b."""
    u = expm_skew(a - a.T) @ base
    pooled = sparse_pool(features @ u.T)[0]
    return softmax_cross_entropy(pooled @ weight.T + bias, labels)[0]


def infodisent(task):
    n, hw, c, k = task["n"], task["hw"], task["c"], task["k"]
    features = np.asarray(task["features"], dtype=np.float64).reshape(n, hw, c)
    labels = np.asarray(task["labels"], dtype=np.int64)
    a = np.asarray(task["a"], dtype=np.float64).reshape(c, c)
    base = np.asarray(task["base"], dtype=np.float64).reshape(c, c)
    weight = np.asarray(task["weight"], dtype=np.float64).reshape(k, c)
    bias = np.asarray(task["bias"], dtype=np.float64).reshape(k)

    s = a - a.T
    rotation = expm_skew(s) @ base
    z = features @ rotation.T  # Z[n, p, :] = U F[n, p, :]
    pooled, top, bottom, argmax, argmin = sparse_pool(z)
    logits = pooled @ weight.T + bias
    loss, grad_logits = softmax_cross_entropy(logits, labels)

    grad_weight = grad_logits.T @ pooled
    grad_bias = grad_logits.sum(axis=0)
    grad_pooled = grad_logits @ weight  # [n, c]
    # dp_c/dZ_pc is 1 at the argmax when the max is positive and 1 at the argmin when the min is negative.
    rows = np.arange(n)[:, None]
    at_max = features[rows, argmax]  # [n, c(channel), c(input)]: F at channel c's argmax pixel
    at_min = features[rows, argmin]
    coeff_max = grad_pooled * (top > 0)
    coeff_min = grad_pooled * (bottom < 0)
    grad_u = np.einsum("nc,ncd->cd", coeff_max, at_max) + np.einsum("nc,ncd->cd", coeff_min, at_min)
    grad_s = expm_skew_adjoint(s, grad_u @ base.T)  # U = E B, so dL/dE = dL/dU B^T
    grad_a = grad_s - grad_s.T

    out = {
        "rotation": rotation.ravel().tolist(),
        "logits": logits.ravel().tolist(),
        "pooled": pooled.ravel().tolist(),
        "argmax": argmax.ravel().tolist(),
        "argmin": argmin.ravel().tolist(),
        # The smallest gap between an extreme and the runner-up: the comparison is only meaningful
        # (float32 picks the same pixels) when this is well above float32 rounding.
        "extreme_gap": float(min(extreme_gap(z), extreme_gap(-z))),
        "loss": float(loss),
        "grad": {
            "rotation": grad_a.ravel().tolist(),
            "weight": grad_weight.ravel().tolist(),
            "bias": grad_bias.tolist(),
        },
    }

    fd = {}
    entries = task.get("fd_a_entries")
    if entries is not None:
        if entries == "all":
            entries = [[i, j] for i in range(c) for j in range(c)]
        h = fd_step(np.abs(a).max())
        values = []
        for i, j in entries:
            plus, minus = a.copy(), a.copy()
            plus[i, j] += h
            minus[i, j] -= h
            values.append(
                (
                    infodisent_loss(features, labels, plus, base, weight, bias)
                    - infodisent_loss(features, labels, minus, base, weight, bias)
                )
                / (2 * h)
            )
        fd["rotation"] = values
    if task.get("fd_linear"):
        fd.update(fd_linear(pooled, labels, weight, bias))
    out["fd"] = fd

    if "adam" in task:
        options = task["adam"]
        params = {"rotation": a, "weight": weight, "bias": bias}
        grads = {"rotation": grad_a, "weight": grad_weight, "bias": grad_bias}
        stepped = adam_steps(params, [grads], [1.0], options)[0]["params"]
        new_a, unprojected, new_bias = stepped["rotation"], stepped["weight"], stepped["bias"]
        new_weight = np.maximum(unprojected, 0.0)  # projection onto W >= 0
        new_rotation = expm_skew(new_a - new_a.T) @ base
        new_logits = sparse_pool(features @ new_rotation.T)[0] @ new_weight.T + new_bias
        out["step"] = {
            "rotation": new_a.ravel().tolist(),
            "weight": new_weight.ravel().tolist(),
            "weight_unprojected": unprojected.ravel().tolist(),
            "bias": new_bias.tolist(),
            # The fold B <- expm(A - A^T) B, A <- 0 gives this base (and the same U, so the same logits).
            "base_folded": new_rotation.ravel().tolist(),
            "clipped": int((unprojected < 0).sum()),
            "logits": new_logits.ravel().tolist(),
        }
    return out


def extreme_gap(z):
    """Smallest difference between the largest and second-largest value per (image, channel)."""
    ordered = np.sort(z, axis=1)
    return (ordered[:, -1, :] - ordered[:, -2, :]).min()


def fd_linear(pooled, labels, weight, bias):
    """Central differences of the loss in every entry of W and b (the pooled features are fixed)."""

    def loss(w, b):
        return softmax_cross_entropy(pooled @ w.T + b, labels)[0]

    h = 1e-6
    grad_w = np.zeros_like(weight)
    for index in np.ndindex(weight.shape):
        plus, minus = weight.copy(), weight.copy()
        plus[index] += h
        minus[index] -= h
        grad_w[index] = (loss(plus, bias) - loss(minus, bias)) / (2 * h)
    grad_b = np.zeros_like(bias)
    for index in range(bias.shape[0]):
        plus, minus = bias.copy(), bias.copy()
        plus[index] += h
        minus[index] -= h
        grad_b[index] = (loss(weight, plus) - loss(weight, minus)) / (2 * h)
    return {"weight": grad_w.ravel().tolist(), "bias": grad_b.tolist()}


def baseline(task):
    n, hw, c, k = task["n"], task["hw"], task["c"], task["k"]
    features = np.asarray(task["features"], dtype=np.float64).reshape(n, hw, c)
    labels = np.asarray(task["labels"], dtype=np.int64)
    weight = np.asarray(task["weight"], dtype=np.float64).reshape(k, c)
    bias = np.asarray(task["bias"], dtype=np.float64).reshape(k)

    pooled = features.mean(axis=1)
    logits = pooled @ weight.T + bias
    loss, grad_logits = softmax_cross_entropy(logits, labels)
    grad_weight = grad_logits.T @ pooled
    grad_bias = grad_logits.sum(axis=0)
    out = {
        "pooled": pooled.ravel().tolist(),
        "logits": logits.ravel().tolist(),
        "loss": float(loss),
        "grad": {"weight": grad_weight.ravel().tolist(), "bias": grad_bias.tolist()},
        "fd": fd_linear(pooled, labels, weight, bias) if task.get("fd_linear") else {},
    }
    if "adam" in task:
        stepped = adam_steps(
            {"weight": weight, "bias": bias}, [{"weight": grad_weight, "bias": grad_bias}], [1.0], task["adam"]
        )[0]["params"]
        out["step"] = {"weight": stepped["weight"].ravel().tolist(), "bias": stepped["bias"].tolist()}
    return out


# ---------------------------------------------------------------------------------------------
# Optimiser


def adam_steps(params, grads_per_step, lr_scales, options):
    """PyTorch's AdamW (torch.optim.AdamW, amsgrad off), one group per parameter:
        p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
        p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    `lr_scales` multiplies each step's learning rate (a schedule)."""
    beta1, beta2, eps = options.get("beta1", 0.9), options.get("beta2", 0.999), options.get("eps", 1e-8)
    groups = options["groups"]
    params = {name: np.array(value, dtype=np.float64) for name, value in params.items()}
    m = {name: np.zeros_like(value) for name, value in params.items()}
    v = {name: np.zeros_like(value) for name, value in params.items()}
    history = []
    for t, (grads, scale) in enumerate(zip(grads_per_step, lr_scales), start=1):
        for name in params:
            g = np.asarray(grads[name], dtype=np.float64).reshape(params[name].shape)
            lr = groups[name]["lr"] * scale
            params[name] = params[name] * (1 - lr * groups[name]["weight_decay"])
            m[name] = beta1 * m[name] + (1 - beta1) * g
            v[name] = beta2 * v[name] + (1 - beta2) * g * g
            denom = np.sqrt(v[name]) / np.sqrt(1 - beta2**t) + eps
            params[name] = params[name] - (lr / (1 - beta1**t)) * m[name] / denom
        history.append({"params": dict(params), "m": dict(m), "v": dict(v)})
    return history


def adam_task(task):
    params = {name: np.asarray(value, dtype=np.float64) for name, value in task["params"].items()}
    scales = task.get("lr_scales") or [1.0] * len(task["grads"])
    history = adam_steps(params, task["grads"], scales, task)
    return {
        "steps": [
            {key: {name: np.ravel(value).tolist() for name, value in entry[key].items()} for key in entry}
            for entry in history
        ]
    }


# ---------------------------------------------------------------------------------------------


def expm_task(task):
    results = []
    for case in task["cases"]:
        n = case["n"]
        s = np.asarray(case["s"], dtype=np.float64).reshape(n, n)
        if np.abs(s + s.T).max() != 0:
            raise ValueError("expm case: S is not exactly skew-symmetric")
        value = expm_skew(s)
        result = {
            "value": value.ravel().tolist(),
            "spectral_norm": float(np.linalg.norm(s, 2)),
            "orthogonality": float(np.abs(value.T @ value - np.eye(n)).max()),
            "taylor_difference": float(np.abs(value - expm_taylor(s)).max()),
        }
        if "grad_out" in case:
            g = np.asarray(case["grad_out"], dtype=np.float64).reshape(n, n)
            grad = expm_skew_adjoint(s, g)
            result["grad"] = grad.ravel().tolist()
            result["block_difference"] = float(np.abs(grad - frechet_block(s.T, g)).max())
            h = fd_step(np.abs(s).max())
            fd = []
            for i, j in case.get("fd_entries", []):
                # Every entry of S is free here (not only skew perturbations): a general-matrix expm.
                plus, minus = s.copy(), s.copy()
                plus[i, j] += h
                minus[i, j] -= h
                fd.append(float(((expm_taylor(plus) - expm_taylor(minus)) * g).sum() / (2 * h)))
            result["fd"] = fd
        results.append(result)
    return {"cases": results}


def main():
    task = json.load(sys.stdin)
    kind = task["task"]
    if kind == "norms":
        out = {
            "spectral": [
                float(np.linalg.norm(np.asarray(m["data"], dtype=np.float64).reshape(m["n"], m["n"]), 2))
                for m in task["matrices"]
            ]
        }
    elif kind == "expm":
        out = expm_task(task)
    elif kind == "infodisent":
        out = infodisent(task)
    elif kind == "baseline":
        out = baseline(task)
    elif kind == "adam":
        out = adam_task(task)
    else:
        raise ValueError(f"unknown task {kind!r}")
    # json.dumps uses the C encoder; json.dump to a stream does not (seconds on a few 256x256 matrices).
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
