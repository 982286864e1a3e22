"""Reference drift statistics computed by scipy/numpy for the drift tests.

Reads a JSON file of cases (argv[1]) and prints one JSON object of results per case name.
Numeric cases: exact KS statistic and p-value and normed Wasserstein distance on the raw rows;
Jensen-Shannon distance and PSI on the histogram with the edges gpulse used (same bins);
the numpy quantiles of the reference (to check gpulse's edges); kstwo.sf at gpulse's D.
Categorical cases: chi-square, Z-test, JS and PSI on the category counts.
"""
import json
import sys

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon


def psi(ref_counts, cur_counts):
    """Evidently's PSI: shares with zero fill 0.0001 (min/1e6 when the min share <= 0.0001)."""
    def shares(c):
        p = np.asarray(c, dtype=float) / np.sum(c)
        positive = p[p > 0]
        fill = positive.min() / 1e6 if positive.min() <= 0.0001 else 0.0001
        return np.where(p == 0, fill, p)
    r, c = shares(ref_counts), shares(cur_counts)
    return float(np.sum((r - c) * np.log(r / c)))


def binned(x, edges):
    """Counts on gpulse's bins: below, [e0,e1), ..., [e_{k-1}, e_k], above."""
    idx = np.searchsorted(edges, x, side="right")
    idx[x == edges[-1]] = len(edges) - 1
    return np.bincount(idx, minlength=len(edges) + 1)


def numeric(case):
    ref = np.asarray(case["ref"], dtype=float)
    cur = np.asarray(case["cur"], dtype=float)
    edges = np.asarray(case["edges"], dtype=float)
    ks = stats.ks_2samp(ref, cur)
    rc, cc = binned(ref, edges), binned(cur, edges)
    n, m = len(ref), len(cur)
    en = n * m / (n + m)
    sturges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    rs = np.histogram(ref, sturges)[0]
    cs = np.histogram(cur, sturges)[0]
    return {
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "kstwo_at_gpulse_d": float(stats.kstwo.sf(case["gpulse_d"], np.round(en))),
        "wasserstein_normed": float(
            stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
        ),
        "jensenshannon": float(jensenshannon(rc, cc)),
        "psi": psi(rc, cc),
        "quantiles": np.quantile(ref, np.linspace(0, 1, case["bins"] + 1)).tolist(),
        "ref_counts": rc.tolist(),
        "cur_counts": cc.tolist(),
        "evidently_jensenshannon_sturges": float(jensenshannon(rs, cs)),
    }


def categorical(case):
    ref = np.asarray(case["ref_counts"], dtype=float)
    cur = np.asarray(case["cur_counts"], dtype=float)
    keep = (ref + cur) > 0
    r, c = ref[keep], cur[keep]
    out = {"jensenshannon": float(jensenshannon(ref, cur)), "psi": psi(ref, cur)}
    if np.all(r > 0):
        out["chisquare_pvalue"] = float(stats.chisquare(c, r * c.sum() / r.sum()).pvalue)
    else:
        out["chisquare_pvalue"] = 0.0
    if len(r) == 2:
        p1, p2 = r[0] / r.sum(), c[0] / c.sum()
        n1, n2 = r.sum(), c.sum()
        pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        out["z_pvalue"] = float(2 * (1 - stats.norm.cdf(abs(z))))
    return out


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    out = {}
    for case in cases:
        out[case["name"]] = numeric(case) if case["kind"] == "numeric" else categorical(case)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
