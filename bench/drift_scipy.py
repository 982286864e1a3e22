"""scipy/numpy side of `npm run bench:drift`: the same drift statistics on the raw window.

argv: directory with meta.json, ref.f64, cur.f64 (row-major float64, numeric features),
ref_cat.i32 and cur_cat.i32 (row-major category codes), and the number of runs.
Prints JSON: CPU seconds per run (time.process_time, data already in memory) and a checksum.
"""
import json
import sys
import time

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon


def psi(r, c):
    def shares(x):
        p = x / x.sum()
        positive = p[p > 0]
        fill = positive.min() / 1e6 if positive.min() <= 0.0001 else 0.0001
        return np.where(p == 0, fill, p)
    a, b = shares(r), shares(c)
    return float(np.sum((a - b) * np.log(a / b)))


def main():
    folder, runs = sys.argv[1], int(sys.argv[2])
    with open(f"{folder}/meta.json") as f:
        meta = json.load(f)
    nf, nc = meta["numeric"], meta["categorical"]
    ref = np.fromfile(f"{folder}/ref.f64").reshape(-1, nf)
    cur = np.fromfile(f"{folder}/cur.f64").reshape(-1, nf)
    ref_cat = np.fromfile(f"{folder}/ref_cat.i32", dtype=np.int32).reshape(-1, nc)
    cur_cat = np.fromfile(f"{folder}/cur_cat.i32", dtype=np.int32).reshape(-1, nc)
    edges = [np.asarray(e) for e in meta["edges"]]
    k = meta["categories"]
    # Columns as contiguous arrays, as a pandas DataFrame would hold them.
    ref_cols = [np.ascontiguousarray(ref[:, i]) for i in range(nf)]
    cur_cols = [np.ascontiguousarray(cur[:, i]) for i in range(nf)]
    ref_cat_cols = [np.ascontiguousarray(ref_cat[:, i]) for i in range(nc)]
    cur_cat_cols = [np.ascontiguousarray(cur_cat[:, i]) for i in range(nc)]
    seconds = []
    checksum = 0.0
    for _ in range(runs):
        t0 = time.process_time()
        total = 0.0
        for i in range(nf):
            r, c = ref_cols[i], cur_cols[i]
            total += stats.ks_2samp(r, c).statistic
            total += stats.wasserstein_distance(r, c) / max(np.std(r), 0.001)
            e = edges[i]
            rc = np.bincount(np.searchsorted(e, r, side="right"), minlength=len(e) + 1)
            cc = np.bincount(np.searchsorted(e, c, side="right"), minlength=len(e) + 1)
            total += jensenshannon(rc, cc) + psi(rc, cc)
        for i in range(nc):
            rc = np.bincount(ref_cat_cols[i], minlength=k + 1).astype(float)
            cc = np.bincount(cur_cat_cols[i], minlength=k + 1).astype(float)
            keep = (rc + cc) > 0
            total += stats.chisquare(cc[keep], rc[keep] * cc.sum() / rc.sum()).pvalue
            total += jensenshannon(rc, cc) + psi(rc, cc)
        seconds.append(time.process_time() - t0)
        checksum = total
    json.dump({"seconds": seconds, "checksum": checksum, "scipy": stats.__name__}, sys.stdout)


if __name__ == "__main__":
    main()
