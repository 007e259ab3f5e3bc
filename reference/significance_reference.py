"""SciPy's binomial test and Wilson interval, the reference for core/analysis/significance.ts.

stdin:  {"intervals": [[successes, n], ...], "discordant": [[b, c], ...],
         "paired": {"labels": [...], "baseline": [...], "infodisent": [...]}}
stdout: {"intervals": [[low, high], ...]  (scipy.stats.binomtest(k, n).proportion_ci(0.95, "wilson")),
         "p": [...]  (McNemar's exact test: scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue, two-sided),
         "paired": {"baseline_only": b, "infodisent_only": c}  (counted with NumPy)}
"""

import json
import sys

import numpy as np
from scipy.stats import binomtest


def main():
    request = json.load(sys.stdin)
    intervals = []
    for successes, n in request["intervals"]:
        ci = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
        intervals.append([ci.low, ci.high])
    p = [1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue for b, c in request["discordant"]]
    labels = np.asarray(request["paired"]["labels"])
    baseline = np.asarray(request["paired"]["baseline"]) == labels
    infodisent = np.asarray(request["paired"]["infodisent"]) == labels
    json.dump(
        {
            "intervals": intervals,
            "p": p,
            "paired": {
                "baseline_only": int(np.sum(baseline & ~infodisent)),
                "infodisent_only": int(np.sum(infodisent & ~baseline)),
            },
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
