"""Two-stage by-data search at scale, against an exact MMD scan and the `learnware` package.

    .venv/bin/python benchmarks/search_scale.py [--sizes 1000,10000,100000] [--anchor-sizes 1000,10000]
        [--queries 200] [--recall-queries 20] [--anchor-queries 5] [--store float16|int8] [--disk]
        [--nprobe auto,64,128] [--k-prime 100,200] [--gather-only 1000000]
        [--sketch-stage-only 1000000 --nlist 903] [--probe-study 100000 --nlist 903,1788 --nprobe 32,64,128]

Specs are synthetic but shaped like real ones: each of N data sets is a Gaussian mixture
of 1-3 components drawn from 200 shared centres in d = 64, reduced to K = 100 points with
Dirichlet weights (the shape RKME gives; fitting 100k real RKMEs would take hours here).
Queries are K = 100 fresh samples of a listed spec's distribution. Everything runs with
one thread (OMP/MKL/faiss/torch) on both sides. Specs are regenerated chunk by chunk from
their seed (vectorised) for the exact scan, so memory stays that of the index; their sketches
and self-terms are cached under var/bench/search_scale (git-ignored), so a rerun skips them. The anchor
(`learnware==0.4.0.post1`, in benchmarks/.venvs/learnware) scores every learnware with
`RKMETableSpecification.dist` and sorts, as its statistical searcher does for one learnware.
The build adds chunk by chunk as the market does, so the IVF regrows (flat -> IVF at 50k, retrained
at ~200k and ~800k) and "build s" ends when the last background retrain is in. Columns: idx GiB
(serialised FAISS), store GiB (the re-rank store, on disk with --disk), RSS (resident after the
build) and peak (the process's maximum). nprobe/k' settings are measured interleaved, query by query.
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

from marketplace.search import vector_index  # noqa: E402
from marketplace.search.index import SpaceIndex  # noqa: E402
from marketplace.search.rkme_store import READ_THREADS, DiskRerankStore  # noqa: E402
from marketplace.search.same_units import same_units_rerank  # noqa: E402
from marketplace.search.vector_index import ivf_nprobe  # noqa: E402
from specs import RFFSketch, batch_self_terms, mmd_squared_batch  # noqa: E402

D_FEAT, K, D_SKETCH, CHUNK, N_CENTERS = 64, 100, 512, 1000, 200
GAMMA = 1.0 / (2 * D_FEAT)
VENV = ROOT / "benchmarks" / ".venvs" / "learnware"
CACHE = ROOT / "var" / "bench" / "search_scale" / "v2"  # var/ is git-ignored; v2 = the vectorised generator
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
        """Specs ``c*CHUNK .. (c+1)*CHUNK-1``: (Zs (CHUNK, K, d), betas (CHUNK, K), components),
        vectorised."""
        rng = np.random.default_rng([self.seed, c])
        n_comp = rng.integers(1, 4, size=CHUNK)
        perm = np.argsort(rng.random((CHUNK, N_CENTERS)), axis=1)[:, :3]  # 3 distinct centres per spec
        pick = (rng.random((CHUNK, K)) * n_comp[:, None]).astype(np.int64)  # each point's component
        Zs = self.centers[np.take_along_axis(perm, pick, axis=1)]
        Zs += 0.6 * rng.standard_normal((CHUNK, K, D_FEAT))
        comps = [perm[i, : n_comp[i]] for i in range(CHUNK)]
        return Zs, rng.dirichlet(np.full(K, 5.0), size=CHUNK), comps

    def derived(self, c: int, sketcher: RFFSketch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(Zs, betas, sketches, self_terms) of chunk c; sketches and self-terms cached under var/bench."""
        Zs, betas, _ = self.chunk(c)
        path = CACHE / f"seed{self.seed}" / f"chunk{c:05d}.npz"
        if path.exists():
            with np.load(path) as f:
                return Zs, betas, f["sketches"], f["st"]
        sketches, st = sketcher.transform_batch(Zs, betas), batch_self_terms(Zs, betas, GAMMA)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, sketches=sketches, st=st)
        tmp.replace(path)
        return Zs, betas, sketches, st

    def query(self, rng: np.random.Generator, n_specs: int) -> tuple[np.ndarray, np.ndarray]:
        j = int(rng.integers(n_specs))
        comp = self.chunk(j // CHUNK)[2][j % CHUNK]
        Z = self.centers[comp][rng.integers(len(comp), size=K)] + 0.6 * rng.standard_normal((K, D_FEAT))
        return Z, np.full(K, 1.0 / K)


def rss_gib() -> float:
    """Peak resident memory of this process so far (includes transients: chunk generation, IVF retrains)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_now_gib() -> float:
    """Resident memory now: after the build, what the space holds (index, store or its id map, caches)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def build(market: Market, n: int, sketcher: RFFSketch, store: str, disk: bool) -> tuple[SpaceIndex, float]:
    store_dir = ROOT / "var" / "bench" / "search_scale" / "stores" if disk else None
    if store_dir is not None:
        store_dir.mkdir(parents=True, exist_ok=True)
    index = SpaceIndex(D_FEAT, D_SKETCH, GAMMA, store_dtype=store, store_dir=store_dir, disk_min=0)
    start = time.perf_counter()
    for c in range(n // CHUNK):
        Zs, betas, sketches, st = market.derived(c, sketcher)
        index.add(np.arange(c * CHUNK, (c + 1) * CHUNK), sketches, list(Zs), list(betas), st)
        if c % 100 == 99:
            print(
                f"  built {(c + 1) * CHUNK} in {time.perf_counter() - start:.0f} s, lists "
                f"{index.sketches.nlist}",
                flush=True,
            )
    index.sketches.wait_regrow()  # the IVF retrains in a thread as the space grows; the build ends with it
    return index, time.perf_counter() - start


class _EveryRMS(dict):
    """Stored RMS for every id (ones: the cost of the comparison does not depend on the factors)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: int) -> tuple[np.ndarray, int]:
        return np.ones(D_FEAT), 3000


# An identity standardization for --same-units (its values do not change the cost either).
_STD = {"format": "lwm-table-standardizer", "version": 1, "scale_invariant": True}
_STD |= {"mean": [0.0] * D_FEAT, "scale": [1.0] * D_FEAT}


def search(
    index: SpaceIndex,
    sketcher: RFFSketch,
    Z: np.ndarray,
    beta: np.ndarray,
    k_prime: int = 100,
    same_units: bool = False,
) -> np.ndarray:
    ids, dist = index.candidates(sketcher.transform(Z, beta)[None], k_prime)
    hits = index.rerank(Z, beta, ids, dist)
    if same_units:  # the same-units prior over the k' candidates (RMS already read: cached per generation)
        hits, _ = same_units_rerank(index, _STD, Z, beta, hits, np.ones(D_FEAT), 200, _EveryRMS())
    return hits.ids


def exact_top(
    market: Market, n: int, queries: list[tuple[np.ndarray, np.ndarray]], sketcher: RFFSketch
) -> np.ndarray:
    """Top-10 of the exact float64 MMD scan (cached: queries are fixed by their seed and n)."""
    path = CACHE / f"seed{market.seed}" / f"exact_n{n}_q{len(queries)}.npy"
    if path.exists():
        return np.load(path)
    scores = np.empty((len(queries), n))
    for c in range(n // CHUNK):
        Zs, betas, _, st = market.derived(c, sketcher)
        for q, (Z, b) in enumerate(queries):
            scores[q, c * CHUNK : (c + 1) * CHUNK] = mmd_squared_batch(Z, b, Zs, betas, GAMMA, st)
    top = np.argsort(scores, axis=1, kind="stable")[:, :10]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, top)
    return top


def measure(
    index: SpaceIndex, sketcher: RFFSketch, queries: list, exact: np.ndarray, settings: list[tuple[int, int]]
) -> list[tuple]:
    """Per (nprobe, k', same units) setting: (p50 ms, p99 ms, top-1 agreement, recall@10, tops, latencies).

    Settings are interleaved query by query (each query runs under every setting in turn), so
    load from other work on the shared machine falls on all of them alike; the order rotates
    with the query, so the first search of a query (which reads its candidates' records from
    disk, later ones mostly find them in the page cache) falls on each setting equally often.
    """
    ivf = None if index.sketches.is_flat() else faiss.extract_index_ivf(index.sketches.index)
    lat = [[] for _ in settings]
    tops = [[] for _ in settings]
    for q, (Z, b) in enumerate(queries):
        for j in range(len(settings)):
            i = (q + j) % len(settings)
            nprobe, k_prime, same_units = settings[i]
            if ivf is not None:
                ivf.nprobe = nprobe
            t = time.perf_counter()
            tops[i].append(search(index, sketcher, Z, b, k_prime, same_units)[:10])
            lat[i].append(1000 * (time.perf_counter() - t))
    out = []
    for i in range(len(settings)):
        top1 = np.mean([tops[i][q][0] == exact[q][0] for q in range(len(exact))])
        recall = np.mean(
            [len(set(tops[i][q].tolist()) & set(exact[q].tolist())) / 10 for q in range(len(exact))]
        )
        out.append(
            (
                float(np.percentile(lat[i], 50)),
                float(np.percentile(lat[i], 99)),
                float(top1),
                float(recall),
                tops[i],
                lat[i],
            )
        )
    return out


def anchor(
    market: Market, n: int, queries: list[tuple[np.ndarray, np.ndarray]], tmp: Path
) -> tuple[np.ndarray, np.ndarray]:
    if not ANCHOR_PY.exists():
        print(f"creating {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(ANCHOR_PY), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "learnware==0.4.0.post1", "fast-pytorch-kmeans"], check=True)
    chunks = [market.chunk(c) for c in range(n // CHUNK)]
    src, dst, script = tmp / "anchor_in.npz", tmp / "anchor_out.npz", tmp / "anchor.py"
    np.savez(
        src,
        Zs=np.concatenate([c[0] for c in chunks]),
        betas=np.concatenate([c[1] for c in chunks]),
        Zq=np.stack([q[0] for q in queries]),
        bq=np.stack([q[1] for q in queries]),
        gamma=GAMMA,
    )
    script.write_text(ANCHOR_SCRIPT)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    subprocess.run(
        [str(ANCHOR_PY), str(script), str(src), str(dst)], check=True, env=env, stdout=subprocess.DEVNULL
    )
    with np.load(dst) as out:
        return out["top"], out["seconds"]


def gather_only(n: int, k_primes: list[int], queries: int, store: str) -> None:
    """Time the disk store's pread stage alone at ``n`` records (random RKMEs; I/O, not ranking)."""
    directory = ROOT / "var" / "bench" / "search_scale" / "stores"
    disk = DiskRerankStore(D_FEAT, store, directory, K=K)
    rng, start = np.random.default_rng(2), time.perf_counter()
    for lo in range(0, n, 10_000):
        part = np.zeros(min(10_000, n - lo), dtype=disk._rec)
        part["ids"] = np.arange(lo, lo + len(part))
        part["Z"] = (
            rng.integers(0, 255, size=part["Z"].shape)
            if store == "int8"
            else rng.random(part["Z"].shape, np.float32)
        )
        part["beta"], part["scale"] = 1.0 / K, 1.0
        disk._write(lo, part)
    disk.n, disk.row = n, {i: i for i in range(n)}
    os.fsync(disk.fd)
    write_s = time.perf_counter() - start
    print(
        f"disk store alone: N={n} {store} file {disk.nbytes() / 2**30:.2f} GiB written in {write_s:.1f} s, "
        f"RSS {rss_gib():.2f} GiB; gather of k' random ids, {queries} draws, {READ_THREADS} pread threads"
    )
    print(f"{'k':>5} {'p50 ms':>7} {'p99 ms':>7}")
    for k_prime in k_primes:
        lat = []
        for _ in range(queries):
            ids = rng.choice(n, k_prime, replace=False)
            t = time.perf_counter()
            disk.gather(ids, np.float32)
            lat.append(1000 * (time.perf_counter() - t))
        print(f"{k_prime:>5} {np.percentile(lat, 50):>7.2f} {np.percentile(lat, 99):>7.2f}", flush=True)
    disk.close()


def sketch_stage_only(n: int, nlist: int, nprobes: list[int], k_prime: int, queries: int) -> None:
    """Time FAISS IVF<nlist>,SQ8 alone at ``n`` sketches: the cached 100k tiled with jitter."""
    market, sketcher = Market(), RFFSketch(D_FEAT, GAMMA, D_SKETCH, random_state=0)
    base = np.concatenate([market.derived(c, sketcher)[2] for c in range(100)])
    rng = np.random.default_rng(3)
    scale = 0.05 * float(np.linalg.norm(base, axis=1).mean()) / np.sqrt(D_SKETCH)
    vectors = np.concatenate(
        [base + scale * rng.standard_normal(base.shape).astype(np.float32) for _ in range(-(-n // len(base)))]
    )[:n]
    index = faiss.index_factory(D_SKETCH, f"IVF{nlist},SQ8")
    start = time.perf_counter()
    index.train(vectors[rng.choice(n, min(n, 256 * nlist), replace=False)])
    index.add(vectors)
    print(
        f"sketch stage alone: N={n} IVF{nlist},SQ8 built in {time.perf_counter() - start:.1f} s, "
        f"{faiss.serialize_index(index).nbytes / 2**30:.2f} GiB; top-{k_prime} of {queries} jittered listed "
        "sketches"
    )
    print(f"{'nprobe':>6} {'p50 ms':>7} {'p99 ms':>7}")
    q = vectors[rng.choice(n, queries, replace=False)] + scale * rng.standard_normal(
        (queries, D_SKETCH)
    ).astype(np.float32)
    for nprobe in nprobes:
        index.nprobe, lat = nprobe, []
        for row in q:
            t = time.perf_counter()
            index.search(row[None], k_prime)
            lat.append(1000 * (time.perf_counter() - t))
        print(f"{nprobe:>6} {np.percentile(lat, 50):>7.2f} {np.percentile(lat, 99):>7.2f}", flush=True)


def probe_study(n: int, nlists: list[int], nprobes: list[int], k_prime: int, queries: int) -> None:
    """Recall of the sketch stage alone vs (nlist, nprobe) at ``n`` specs, over many queries.

    The reference top-10 of each query is the float16 store's exact MMD re-rank of the flat
    sketch top-1000 (the flat stage rarely ranks an exact top-10 spec beyond 100, and the store's
    rounding left top-1/R@10 at 1.00 against the float64 scan at 10k), so hundreds of queries
    cost seconds instead of an hour of float64 scans. Reported: the share of the reference
    top-10 inside the IVF's top-k' (the two-stage search's R@10, as the re-rank then orders
    them exactly) and the sketch stage's latency.
    """
    market, sketcher = Market(), RFFSketch(D_FEAT, GAMMA, D_SKETCH, random_state=0)
    index = SpaceIndex(D_FEAT, D_SKETCH, GAMMA)
    vector_index.FLAT_MAX = 10**9  # keep the flat index: it is the reference's first stage
    start = time.perf_counter()
    vectors = np.empty((n, D_SKETCH), dtype=np.float32)
    for c in range(n // CHUNK):
        Zs, betas, sketches, st = market.derived(c, sketcher)
        index.add(np.arange(c * CHUNK, (c + 1) * CHUNK), sketches, list(Zs), list(betas), st)
        vectors[c * CHUNK : (c + 1) * CHUNK] = sketches
    rng = np.random.default_rng(5)
    qs = [market.query(rng, n) for _ in range(queries)]
    qv = np.stack([sketcher.transform(Z, b) for Z, b in qs]).astype(np.float32)
    ref = []
    for (Z, b), v in zip(qs, qv, strict=True):
        ids, dist = index.candidates(v[None], 1000)
        ref.append(set(index.rerank(Z, b, ids, dist).ids[:10].tolist()))
    flat_hit = np.mean(
        [
            len(set(index.candidates(v[None], k_prime)[0].tolist()) & r) / 10
            for v, r in zip(qv, ref, strict=True)
        ]
    )
    print(
        f"probe study: N={n}, {queries} queries, reference = float16 re-rank of the flat top-1000 "
        f"(built in {time.perf_counter() - start:.0f} s); flat top-{k_prime} holds {flat_hit:.3f} of it"
    )
    print(f"{'nlist':>6} {'train s':>8} {'nprobe':>6} {'frac':>6} {'R@10':>6} {'p50 ms':>7} {'p99 ms':>7}")
    ids = np.arange(n, dtype=np.int64)
    for nlist in nlists:
        ivf = faiss.index_factory(D_SKETCH, f"IVF{nlist},SQ8")
        t = time.perf_counter()
        train = vectors[
            np.sort(rng.choice(n, min(n, vector_index.IVF_TRAIN_PER_LIST * nlist), replace=False))
        ]
        ivf.train(train)
        ivf.add_with_ids(vectors, ids)
        train_s = time.perf_counter() - t
        for nprobe in nprobes:
            if nprobe > nlist:
                continue
            faiss.extract_index_ivf(ivf).nprobe = nprobe
            lat, hit = [], []
            for v, r in zip(qv, ref, strict=True):
                t = time.perf_counter()
                _, got = ivf.search(v[None], k_prime)
                lat.append(1000 * (time.perf_counter() - t))
                hit.append(len(set(got[0].tolist()) & r) / 10)
            print(
                f"{nlist:>6} {train_s:>8.1f} {nprobe:>6} {nprobe / nlist:>6.3f} {np.mean(hit):>6.3f} "
                f"{np.percentile(lat, 50):>7.2f} {np.percentile(lat, 99):>7.2f}",
                flush=True,
            )
        del ivf


def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--anchor-sizes", default="1000,10000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=20)
    parser.add_argument("--anchor-queries", type=int, default=5)
    parser.add_argument("--store", default="float16", choices=["float16", "int8"])
    parser.add_argument("--disk", action="store_true", help="re-rank store on local disk (pread), not in RAM")
    parser.add_argument(
        "--nprobe",
        default="auto",
        help="comma list, IVF only (each row one setting); auto = ivf_nprobe(nlist)",
    )
    parser.add_argument("--k-prime", default="100", help="comma list of candidates re-ranked exactly")
    parser.add_argument(
        "--same-units",
        action="store_true",
        help="also time each setting with the same-units prior (+su rows; interleaved query by query)",
    )
    parser.add_argument(
        "--gather-only", type=int, default=0, help="N: time only the disk store's reads at N records"
    )
    parser.add_argument("--sketch-stage-only", type=int, default=0, help="N: time only FAISS at N sketches")
    parser.add_argument(
        "--nlist", default="903", help="lists of --sketch-stage-only's IVF (comma list for --probe-study)"
    )
    parser.add_argument(
        "--probe-study", type=int, default=0, help="N: recall of the sketch stage vs nlist x nprobe"
    )
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    if args.probe_study:
        probe_study(
            args.probe_study, _ints(args.nlist), _ints(args.nprobe), _ints(args.k_prime)[0], args.queries
        )
        return
    if args.sketch_stage_only:
        nlist = _ints(args.nlist)[0]
        probes = [ivf_nprobe(nlist) if p == "auto" else int(p) for p in args.nprobe.split(",") if p]
        sketch_stage_only(args.sketch_stage_only, nlist, probes, _ints(args.k_prime)[0], args.queries)
        return
    if args.gather_only:
        gather_only(args.gather_only, _ints(args.k_prime), args.queries, args.store)
        return
    market, sketcher = Market(), RFFSketch(D_FEAT, GAMMA, D_SKETCH, random_state=0)
    anchor_sizes = set(_ints(args.anchor_sizes))
    print(
        f"d={D_FEAT} K={K} D={D_SKETCH} store={args.store}{' on disk' if args.disk else ' in RAM'} "
        "threads=1; "
        f"latency over {args.queries} queries, recall over {args.recall_queries}"
    )
    head = (
        f"{'N':>9} {'index':>13} {'nprobe':>6} {'k':>4} {'build s':>8} {'idx GiB':>8} {'store GiB':>9} "
        f"{'RSS GiB':>8} {'peak GiB':>8} {'p50 ms':>7} {'p99 ms':>7} {'top1':>5} {'R@10':>5}"
    )
    rows, anchor_rows = [head], []
    with tempfile.TemporaryDirectory() as tmpdir:
        for n in _ints(args.sizes):
            index, build_s = build(market, n, sketcher, args.store, args.disk)
            flat = index.sketches.is_flat()
            kind = "Flat" if flat else f"IVF{faiss.extract_index_ivf(index.sketches.index).nlist},SQ8"
            idx_gib = len(index.sketches.to_bytes()) / 2**30
            store_gib = index.store.nbytes() / 2**30  # on disk with --disk, else in RAM
            rss_now = rss_now_gib()
            rng = np.random.default_rng(1)
            queries = [market.query(rng, n) for _ in range(args.queries)]
            exact = exact_top(market, n, queries[: args.recall_queries], sketcher)
            probes = [
                ivf_nprobe(index.sketches.nlist) if p == "auto" else int(p)
                for p in args.nprobe.split(",")
                if p
            ]
            settings = [
                (nprobe, k_prime, su)
                for nprobe in ([0] if flat else probes)
                for k_prime in _ints(args.k_prime)
                for su in ([False, True] if args.same_units else [False])
            ]
            results = measure(index, sketcher, queries, exact, settings)
            tops, lat = results[-1][4:6]  # the last setting's, for the anchor comparison
            for (nprobe, k_prime, su), (p50, p99, top1, recall, *_) in zip(settings, results, strict=True):
                label = kind + (" +su" if su else "")
                rows.append(
                    f"{n:>9} {label:>13} {nprobe or '-':>6} {k_prime:>4} {build_s:>8.1f} {idx_gib:>8.2f} "
                    f"{store_gib:>9.2f} {rss_now:>8.2f} {rss_gib():>8.2f} {p50:>7.2f} {p99:>7.2f} "
                    f"{top1:>5.2f} {recall:>5.2f}"
                )
                print(rows[-1], flush=True)
            if n in anchor_sizes:
                aq = queries[: args.anchor_queries]
                a_top, a_sec = anchor(market, n, aq, Path(tmpdir))
                ours_ms = float(np.median(lat))
                agree = np.mean([a_top[q][0] == tops[q][0] for q in range(len(aq))])
                anchor_rows.append(
                    f"{n:>9} {1000 * np.median(a_sec):>12.1f} {1000 * np.median(a_sec) / n:>9.3f} "
                    f"{ours_ms:>8.2f} {1000 * np.median(a_sec) / ours_ms:>8.0f}x {agree:>10.2f}"
                )
            del index
    print("\n".join(rows))
    if anchor_rows:
        print(
            f"\nlearnware 0.4.0.post1 scan vs ours ({args.anchor_queries} queries, medians; last nprobe/k' "
            "row)"
        )
        print(f"{'N':>9} {'anchor ms':>12} {'ms/lw':>9} {'ours ms':>8} {'speed-up':>9} {'same top1':>10}")
        print("\n".join(anchor_rows))


if __name__ == "__main__":
    main()
