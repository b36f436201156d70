"""Fit time and peak memory against the size of the training set: serial vs local dask workers.

    python benchmarks/scaling.py                  # Mo × 0.5, 1, 2, 4 (about 5,000 to 40,000 atoms)
    python benchmarks/scaling.py --full           # up to Mo × 10 (about 100,000 atoms)
    python benchmarks/scaling.py --configs 97 194 --backends serial

Data: the mlearn Mo training set (../shared/data/mlearn; 194 configurations, 10,087 atoms)
replicated: copy k > 0 has every atom displaced by a Gaussian of 0.01 Å (seed k) and keeps
the DFT labels of the original, so the numbers measure cost, not accuracy. The copies are
written as extended-XYZ shards of 97 configurations in a temporary folder, and every fit
gets the file names: chunks read their own slices (the streaming path), so no process holds
the training set.

Every fit runs in a fresh process (benchmarks/_memory.py) after a warm-up fit on a few
configurations (numba compilation, worker start-up). Columns: fit wall time; the peak
resident memory of the fitting process during the fit (``GAP.peak_memory_mb_``) and of the
whole process (``measure_call``: interpreter, imports, dask client); the largest peak of a
worker process (``GAP.worker_peak_memory_mb_``); the largest relative difference of the
coefficients from the serial fit of the same data. The serial path must keep its memory
flat in the data size: the last line compares the largest and smallest serial peaks.

BLAS runs one thread in every process (``--blas-threads``): on a loaded 2-core machine a
multi-threaded OpenBLAS QR spins and runs 50× slower, which would swamp the comparison.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory import measure_call  # noqa: E402

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
SHARD = 97  # configurations per shard: half the Mo training set
MODERATE = [97, 194, 388, 776]
FULL = [97, 388, 970, 1940]


def write_shards(folder, n_configs, rattle=0.01):
    """Shards of SHARD configurations (Mo replicated and perturbed); returns their paths."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from gapfit.structures.io import read_mlearn
    original = read_mlearn(MLEARN / "Mo_train.json")
    paths = []
    for shard in range(-(-n_configs // SHARD)):
        copy, half = divmod(shard, 2)
        rng = np.random.default_rng(copy)
        block = []
        for atoms in original[half * SHARD:(half + 1) * SHARD]:
            labels = atoms.calc.results
            moved = atoms.copy()
            if copy:
                moved.positions += rattle * rng.standard_normal(moved.positions.shape)
            moved.calc = SinglePointCalculator(moved, **{k: labels[k] for k in
                                                         ("energy", "forces", "stress") if k in labels})
            block.append(moved)
        path = Path(folder) / f"mo_{shard:03d}.xyz"
        ase.io.write(path, block, format="extxyz")
        paths.append(str(path))
    return paths


def make_model(args, backend):
    import gapfit
    return gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=20),
                             gapfit.SOAP(n_max=args["n_max"], l_max=args["l_max"],
                                         n_sparse=args["n_sparse"])],
                      chunk_atoms=args["chunk_atoms"], backend=backend, random_state=0)


def fit_job(paths, n_configs, backend, args):
    """Runs in a fresh process: warm up, then fit the first n_configs of the shards."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(args["blas_threads"])
    paths = paths[:-(-n_configs // SHARD)]
    cluster = client = None
    if backend == "dask":
        from dask.distributed import Client, LocalCluster
        cluster = LocalCluster(n_workers=args["workers"], threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        import gapfit
        warm = gapfit.io.read(paths[0], index=":4")
        make_model(args, client).fit(warm)
        model = make_model(args, client)
        start = time.perf_counter()
        model.fit(paths)
        fit_seconds = time.perf_counter() - start
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return {"fit_s": fit_seconds, "fit_mb": model.peak_memory_mb_,
            "worker_mb": model.worker_peak_memory_mb_, "alpha": model.alpha_,
            "configs": model.n_training_structures_}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, nargs="+", default=None,
                        help=f"training set sizes (multiples of {SHARD}); default {MODERATE}")
    parser.add_argument("--full", action="store_true", help=f"sizes {FULL} (about 100,000 atoms)")
    parser.add_argument("--backends", nargs="+", default=["serial", "dask"],
                        choices=["serial", "dask"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-max", type=int, default=4)
    parser.add_argument("--l-max", type=int, default=3)
    parser.add_argument("--n-sparse", type=int, default=200)
    parser.add_argument("--chunk-atoms", type=int, default=512)
    parser.add_argument("--blas-threads", type=int, default=1)
    options = parser.parse_args(argv)
    if not MLEARN.is_dir():
        print(f"skipped: mlearn data not found at {MLEARN}")
        return 0
    sizes = options.configs or (FULL if options.full else MODERATE)
    if any(size <= 0 or size % SHARD for size in sizes):
        parser.error(f"--configs must be positive multiples of {SHARD}")
    settings = {"n_max": options.n_max, "l_max": options.l_max, "n_sparse": options.n_sparse,
                "chunk_atoms": options.chunk_atoms, "workers": options.workers,
                "blas_threads": options.blas_threads}
    print(f"recipe: TwoBody(n_sparse=20) + SOAP(n_max={options.n_max}, l_max={options.l_max}, "
          f"n_sparse={options.n_sparse}); chunk_atoms={options.chunk_atoms}; "
          f"dask: {options.workers} worker processes × 1 thread; BLAS threads {options.blas_threads}; "
          f"{os.cpu_count()} cores")
    header = (f"{'configs':>8}{'atoms':>9}  {'backend':<8}{'fit s':>8}{'fit MB':>9}"
              f"{'process MB':>12}{'worker MB':>11}{'Δα rel':>10}")
    print(header)
    print("-" * len(header))
    serial_peaks = {}
    with tempfile.TemporaryDirectory() as folder:
        paths = write_shards(folder, max(sizes))
        from gapfit.fit.training import frame_sizes
        atoms_per_shard = [sum(frame_sizes(path)) for path in paths]
        for n_configs in sizes:
            n_atoms = sum(atoms_per_shard[:-(-n_configs // SHARD)])
            reference = None
            for backend in options.backends:
                result, _, process_mb = measure_call(fit_job, paths, n_configs, backend, settings)
                if reference is None:
                    reference, change = result["alpha"], "-"
                else:
                    change = (f"{np.abs(result['alpha'] - reference).max() / np.abs(reference).max():.1e}")
                if backend == "serial":
                    serial_peaks[n_configs] = result["fit_mb"]
                worker = "-" if result["worker_mb"] is None else f"{result['worker_mb']:.0f}"
                print(f"{result['configs']:>8}{n_atoms:>9}  {backend:<8}{result['fit_s']:>8.1f}"
                      f"{result['fit_mb']:>9.0f}{process_mb:>12.0f}{worker:>11}{change:>10}",
                      flush=True)
    if len(serial_peaks) > 1:
        small, large = min(serial_peaks), max(serial_peaks)
        ratio = serial_peaks[large] / serial_peaks[small]
        print(f"serial peak memory: {serial_peaks[small]:.0f} MB at {small} configurations, "
              f"{serial_peaks[large]:.0f} MB at {large} ({large / small:.0f}× the data): "
              f"ratio {ratio:.2f} ({'flat' if ratio < 1.25 else 'NOT flat'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
