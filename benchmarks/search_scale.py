"""Two-stage by-data search at scale, against an exact MMD scan and the `learnware` package.

    .venv/bin/python benchmarks/search_scale.py [--sizes 1000,10000,100000] [--anchor-sizes 1000,10000]
        [--queries 200] [--recall-queries 20] [--anchor-queries 5] [--store float16|int8]

Specs are synthetic but shaped like real ones: each of N data sets is a Gaussian mixture
of 1-3 components drawn from 200 shared centres in d = 64, reduced to K = 100 points with
Dirichlet weights (the shape RKME gives; fitting 100k real RKMEs would take hours here).
Queries are K = 100 fresh samples of a listed spec's distribution. Everything runs with
one thread (OMP/MKL/faiss/torch) on both sides. Specs are regenerated chunk by chunk from
their seed for the exact scan, so memory stays that of the index. The anchor
(`learnware==0.4.0.post1`, in benchmarks/.venvs/learnware) scores every learnware with
`RKMETableSpecification.dist` and sorts, as its statistical searcher does for one learnware.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from marketplace.search.index import SpaceIndex  # noqa: E402
from specs import RFFSketch, batch_self_terms, mmd_squared_batch  # noqa: E402

D_FEAT, K, D_SKETCH, CHUNK, N_CENTERS = 64, 100, 512, 1000, 200
GAMMA = 1.0 / (2 * D_FEAT)
VENV = ROOT / "benchmarks" / ".venvs" / "learnware"
ANCHOR_PY = VENV / "bin" / "python"
ANCHOR_SCRIPT = r"""
import sys, time, numpy as np, torch
torch.set_num_threads(1)
from learnware.specification import RKMETableSpecification
data = np.load(sys.argv[1]); gamma = float(data["gamma"])
def make(Z, b):
    s = RKMETableSpecification(gamma=gamma, cuda_idx=-1)
    s.z, s.beta = torch.from_numpy(Z).double(), torch.from_numpy(b).double()
    return s
cands = [make(Z, b) for Z, b in zip(data["Zs"], data["betas"])]
tops, secs = [], []
for Zq, bq in zip(data["Zq"], data["bq"]):
    user = make(Zq, bq)
    t = time.perf_counter()
    d = np.array([user.dist(c) for c in cands])
    order = np.argsort(d)[:10]
    secs.append(time.perf_counter() - t); tops.append(order)
np.savez(sys.argv[2], top=np.array(tops), seconds=np.array(secs))
"""


class Market:
    """Deterministic synthetic specs: chunk c is regenerated identically from (seed, c)."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.centers = 1.5 * rng.standard_normal((N_CENTERS, D_FEAT))

    def chunk(self, c: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        rng = np.random.default_rng([self.seed, c])
        comps = [rng.choice(N_CENTERS, size=rng.integers(1, 4), replace=False) for _ in range(CHUNK)]
        Zs = np.empty((CHUNK, K, D_FEAT))
        for i, comp in enumerate(comps):
            Zs[i] = self.centers[comp][rng.integers(len(comp), size=K)] + 0.6 * rng.standard_normal((K, D_FEAT))
        return Zs, rng.dirichlet(np.full(K, 5.0), size=CHUNK), comps

    def query(self, rng: np.random.Generator, n_specs: int) -> tuple[np.ndarray, np.ndarray]:
        j = int(rng.integers(n_specs))
        comp = self.chunk(j // CHUNK)[2][j % CHUNK]
        Z = self.centers[comp][rng.integers(len(comp), size=K)] + 0.6 * rng.standard_normal((K, D_FEAT))
        return Z, np.full(K, 1.0 / K)


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def build(market: Market, n: int, sketcher: RFFSketch, store: str) -> tuple[SpaceIndex, float]:
    index = SpaceIndex(D_FEAT, D_SKETCH, GAMMA, store_dtype=store)
    start = time.perf_counter()
    for c in range(n // CHUNK):
        Zs, betas, _ = market.chunk(c)
        ids = np.arange(c * CHUNK, (c + 1) * CHUNK)
        index.add(ids, sketcher.transform_batch(Zs, betas), list(Zs), list(betas), batch_self_terms(Zs, betas, GAMMA))
    return index, time.perf_counter() - start


def search(index: SpaceIndex, sketcher: RFFSketch, Z: np.ndarray, beta: np.ndarray, k_prime: int = 100) -> np.ndarray:
    ids, dist = index.candidates(sketcher.transform(Z, beta)[None], k_prime)
    return index.rerank(Z, beta, ids, dist).ids


def exact_top(market: Market, n: int, queries: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    scores = np.empty((len(queries), n))
    for c in range(n // CHUNK):
        Zs, betas, _ = market.chunk(c)
        st = batch_self_terms(Zs, betas, GAMMA)
        for q, (Z, b) in enumerate(queries):
            scores[q, c * CHUNK : (c + 1) * CHUNK] = mmd_squared_batch(Z, b, Zs, betas, GAMMA, st)
    return np.argsort(scores, axis=1, kind="stable")[:, :10]


def anchor(market: Market, n: int, queries: list[tuple[np.ndarray, np.ndarray]], tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    if not ANCHOR_PY.exists():
        print(f"creating {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(ANCHOR_PY), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "learnware==0.4.0.post1", "fast-pytorch-kmeans"], check=True)
    chunks = [market.chunk(c) for c in range(n // CHUNK)]
    src, dst, script = tmp / "anchor_in.npz", tmp / "anchor_out.npz", tmp / "anchor.py"
    np.savez(src, Zs=np.concatenate([c[0] for c in chunks]), betas=np.concatenate([c[1] for c in chunks]),
             Zq=np.stack([q[0] for q in queries]), bq=np.stack([q[1] for q in queries]), gamma=GAMMA)
    script.write_text(ANCHOR_SCRIPT)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    subprocess.run([str(ANCHOR_PY), str(script), str(src), str(dst)], check=True, env=env, stdout=subprocess.DEVNULL)
    with np.load(dst) as out:
        return out["top"], out["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--anchor-sizes", default="1000,10000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=20)
    parser.add_argument("--anchor-queries", type=int, default=5)
    parser.add_argument("--store", default="float16", choices=["float16", "int8"])
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    market, sketcher = Market(), RFFSketch(D_FEAT, GAMMA, D_SKETCH, random_state=0)
    anchor_sizes = {int(s) for s in args.anchor_sizes.split(",") if s}
    print(f"d={D_FEAT} K={K} D={D_SKETCH} store={args.store} threads=1; latency over {args.queries} queries, "
          f"recall over {args.recall_queries}; k'=100 re-ranked")
    head = f"{'N':>9} {'index':>12} {'build s':>8} {'mem GiB':>8} {'RSS GiB':>8} {'p50 ms':>7} {'p99 ms':>7} {'top1':>5} {'R@10':>5}"
    rows, anchor_rows = [head], []
    with tempfile.TemporaryDirectory() as tmpdir:
        for n in [int(s) for s in args.sizes.split(",")]:
            index, build_s = build(market, n, sketcher, args.store)
            kind = "Flat" if index.sketches.is_flat() else f"IVF{faiss.extract_index_ivf(index.sketches.index).nlist},SQ8"
            mem = (index.store.nbytes() + len(index.sketches.to_bytes())) / 2**30
            rng = np.random.default_rng(1)
            queries = [market.query(rng, n) for _ in range(args.queries)]
            lat, tops = [], []
            for Z, b in queries:
                t = time.perf_counter()
                tops.append(search(index, sketcher, Z, b)[:10])
                lat.append(1000 * (time.perf_counter() - t))
            exact = exact_top(market, n, queries[: args.recall_queries])
            top1 = np.mean([tops[q][0] == exact[q][0] for q in range(len(exact))])
            recall = np.mean([len(set(tops[q].tolist()) & set(exact[q].tolist())) / 10 for q in range(len(exact))])
            rows.append(f"{n:>9} {kind:>12} {build_s:>8.1f} {mem:>8.2f} {rss_gib():>8.2f} {np.percentile(lat, 50):>7.2f} "
                        f"{np.percentile(lat, 99):>7.2f} {top1:>5.2f} {recall:>5.2f}")
            print(rows[-1], flush=True)
            if n in anchor_sizes:
                aq = queries[: args.anchor_queries]
                a_top, a_sec = anchor(market, n, aq, Path(tmpdir))
                ours_ms = float(np.median(lat))
                agree = np.mean([a_top[q][0] == tops[q][0] for q in range(len(aq))])
                anchor_rows.append(f"{n:>9} {1000 * np.median(a_sec):>12.1f} {1000 * np.median(a_sec) / n:>9.3f} "
                                   f"{ours_ms:>8.2f} {1000 * np.median(a_sec) / ours_ms:>8.0f}x {agree:>10.2f}")
            del index
    print("\n".join(rows))
    if anchor_rows:
        print(f"\nlearnware 0.4.0.post1 scan vs ours ({args.anchor_queries} queries, medians)")
        print(f"{'N':>9} {'anchor ms':>12} {'ms/lw':>9} {'ours ms':>8} {'speed-up':>9} {'same top1':>10}")
        print("\n".join(anchor_rows))


if __name__ == "__main__":
    main()
