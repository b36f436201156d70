"""MD speed: µs per atom per energy+forces+stress call, gapfit against QUIP in the same run.

    python benchmarks/md_speed.py                       # fit both models, time 128 and 1,024 atoms,
                                                        # gapfit scaling up to ~10,000 atoms
    python benchmarks/md_speed.py --workdir /tmp/mdspeed   # keep (and reuse) both fitted models
    python benchmarks/md_speed.py --no-quip --scaling 4 8   # gapfit only, quick look
    python benchmarks/md_speed.py --workdir /tmp/mdspeed --before /tmp/md_old --rounds 5
        # also time an older gapfit tree (e.g. ``git archive d75a0f9 | tar -x -C /tmp/md_old``)
        # against this one on the same model, alternating, best of 5 rounds each

Recipe (``../shared/ANCHORS.md``): 2-body (cutoff 5 Å, 20 sparse points) + SOAP (n_max 8,
l_max 6, r_cut 5 Å, sigma 0.5 Å, zeta 4, 1,000 CUR sparse points), fitted by gapfit and by
``gap_fit`` on the same strided subset of mlearn Mo_train (timing does not depend on the fit's
quality, only on the recipe). Structures: rattled bcc Mo supercells (a = 3.16 Å).

Every timed call follows a random displacement of every atom (``--displacement`` Å rms per
component), as in MD: gapfit may reuse its neighbour list (skin 0.5 Å), QUIP has no such
cache. Both run on ``--threads`` threads (default 1: one core each, numba, BLAS and OpenMP
limited alike), the issue's yardstick; wall time is what an MD user waits, CPU time (this
process, all threads) the cost in core time, and the two differ when the machine is busy.
The cost of ``uncertainty=True`` (posterior stds of energy, local energies and forces) is
reported relative to a plain call at the smallest size. With ``--before`` the 128 and 1,024
atom rows are also timed for an older source tree and for this one, each in its own
process (same script, same saved model, ``PYTHONPATH`` choosing the gapfit), alternating,
and the best of ``--rounds`` is shown: on a shared machine only such interleaved minima
compare.

Uncertainty table (``--uncertainty-repeats``, default 128, 1,024 and 5,488 atoms): per
atom per call, wall and CPU time and the peak memory of a plain call, of
``uncertainty="local"`` (exact local-energy stds and the cheap force score, target ≤ 2× plain)
and of ``uncertainty=True`` (full force stds, target: cost per atom flat in size, memory
linear). Each (mode, size) runs in a fresh process (``_memory.measure_call``), warmed up on a
128-atom cell first; "call MB" is its peak resident memory minus the resident memory just
before the timed calls (model, structure and interpreter excluded).
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _quip_reference as quip  # noqa: E402

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
LATTICE_CONSTANT = 3.16
_THREAD_LIMITS = None


def bcc_supercell(repeat, seed=0):
    """Rattled cubic bcc Mo with 2 repeat³ atoms."""
    atoms = bulk("Mo", "bcc", a=LATTICE_CONSTANT, cubic=True).repeat(repeat)
    atoms.rattle(stdev=0.02, seed=seed)
    return atoms


def limit_threads(threads):
    """Run numba kernels, BLAS and OpenMP (quippy) on ``threads`` threads for the whole run."""
    global _THREAD_LIMITS
    import numba
    from threadpoolctl import threadpool_limits
    if quip.have_quip():
        import quippy.potential  # noqa: F401  (load its libraries so that the limit covers them)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    _THREAD_LIMITS = threadpool_limits(limits=threads)  # kept for the life of the process
    print(f"threads: {numba.get_num_threads()} (numba), {threads} (BLAS, OpenMP)")


def fit_gapfit(train, n_sparse, path):
    """The benchmark's model, fitted by the gapfit on the path (reused when ``path`` exists)."""
    import gapfit
    if path.is_file():
        print(f"gapfit model: reusing {path}")
        return gapfit.load(path)
    model = gapfit.GAP(terms=[gapfit.TwoBody(cutoff=5.0, n_sparse=20),
                              gapfit.SOAP(r_cut=5.0, n_max=8, l_max=6, sigma=0.5, zeta=4,
                                          n_sparse=n_sparse)],
                       random_state=0)
    start = time.perf_counter()
    model.fit(train)
    print(f"gapfit model: fitted in {time.perf_counter() - start:.0f} s, saved to {path}")
    model.save(path)
    return model


def fit_quip(train, n_sparse, workdir):
    gp_file = workdir / "gap.xml"
    if gp_file.is_file():
        print(f"QUIP model: reusing {gp_file}")
        return gp_file
    fit = quip.run_gap_fit(train, workdir, n_sparse_soap=n_sparse)
    print(f"QUIP model: gap_fit took {fit['wall_s']:.0f} s, model {fit['gp_file']}")
    return Path(fit["gp_file"])


def process_memory_mb(key):
    """This process's resident memory (VmRSS) or its peak (VmHWM), MB (Linux)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 / 1e6 for line in status
                    if line.startswith(key + ":"))


def uncertainty_job(model_path, repeat, mode, n_calls, displacement, threads):
    """(wall µs/atom, cpu µs/atom, peak MB, call MB) of ``n_calls`` calls of one uncertainty
    mode ("plain", "local" or "full") on bcc_supercell(repeat); run in a fresh process."""
    import gapfit
    limit_threads(threads)
    model = gapfit.load(model_path)
    uncertainty = {"plain": False, "local": "local", "full": True}[mode]
    calculate = gapfit_timer(model, uncertainty=uncertainty)
    calculate(bcc_supercell(4, seed=1))  # compile, build the per-model factors, warm up
    atoms = bcc_supercell(repeat)
    before = process_memory_mb("VmRSS")
    wall, cpu = time_calls(atoms, calculate, n_calls, displacement, warm_up=False)
    peak = process_memory_mb("VmHWM")
    return wall, cpu, peak, peak - before


def uncertainty_table(model_path, repeats, calls, displacement, threads):
    from _memory import measure_call
    print("\nuncertainty per call (fresh process per row; µs per atom; MB)")
    print(f"{'atoms':>7}{'mode':>7}{'wall':>10}{'cpu':>10}{'× plain':>9}{'peak MB':>9}"
          f"{'call MB':>9}")
    for repeat in repeats:
        n_atoms = len(bcc_supercell(repeat))
        plain = None
        for mode in ("plain", "local", "full"):
            n = calls if mode != "full" else (2 if n_atoms <= 200 else 1)
            (wall, cpu, peak, call), _, _ = measure_call(uncertainty_job, str(model_path), repeat,
                                                         mode, n, displacement, threads)
            plain = plain or cpu
            print(f"{n_atoms:>7}{mode:>7}{wall:>10.0f}{cpu:>10.0f}{cpu / plain:>9.2f}"
                  f"{peak:>9.0f}{call:>9.0f}", flush=True)


def time_calls(atoms, calculate, n_calls, displacement, seed=0, warm_up=True):
    """(wall, cpu) µs per atom of one call of ``calculate(atoms)``, the median over ``n_calls``
    calls (on a shared machine single calls stall now and then: the median is the typical
    call), after one warm-up call (unless ``warm_up`` is False); the atoms move by a random
    displacement before every call."""
    rng = np.random.default_rng(seed)
    if warm_up:
        calculate(atoms)
    walls, cpus = [], []
    for _ in range(n_calls):
        atoms.positions = atoms.positions + rng.normal(scale=displacement, size=(len(atoms), 3))
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        calculate(atoms)
        walls.append(time.perf_counter() - wall_start)
        cpus.append(time.process_time() - cpu_start)
    per_atom = 1e6 / len(atoms)
    return float(np.median(walls)) * per_atom, float(np.median(cpus)) * per_atom


def gapfit_timer(model, skin=0.5, uncertainty=False):
    """A function that runs one energy+forces+stress call of a GAPCalculator."""
    import gapfit
    calculator = gapfit.GAPCalculator(model, uncertainty=uncertainty, skin=skin)

    def calculate(atoms):
        atoms.calc = calculator
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
    return calculate


def quip_timer(gp_file):
    """A function that runs one quippy energy+forces+stress calculation (one Fortran call)."""
    from quippy.potential import Potential
    potential = Potential(param_filename=str(gp_file))

    def calculate(atoms):
        copy = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        potential.calculate(copy, properties=["energy", "forces", "stress"])
    return calculate


def agreement(model, gp_file, atoms):
    """Force RMS difference (meV/Å) between the gapfit and QUIP models: both fit the same data,
    so this only shows that the two potentials are comparable, not equal."""
    import gapfit
    _, quip_forces, _ = quip.quip_predict(gp_file, [atoms])
    ours = model.predict_structure(atoms).forces
    return 1e3 * np.sqrt(np.mean((ours - quip_forces[0]) ** 2))


def time_tree(tree, model_path, repeats, calls, displacement, threads, train_path, stride,
              n_sparse):
    """{atoms: (wall, cpu) µs/atom} of the gapfit in source tree ``tree``, in a new process;
    the model at ``model_path`` is first fitted there by that tree's gapfit if absent (an
    older gapfit cannot read a newer model file)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--time-only", str(model_path),
               "--threads", str(threads), "--calls", str(calls), "--displacement",
               str(displacement), "--repeats", *map(str, repeats), "--data-dir",
               str(train_path.parent), "--stride", str(stride), "--n-sparse", str(n_sparse)]
    environment = dict(os.environ, PYTHONPATH=str(tree))
    for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        environment.setdefault(name, str(threads))
    output = subprocess.run(command, env=environment, check=True, capture_output=True,
                            text=True).stdout
    return {int(size): tuple(times) for size, times in json.loads(output.splitlines()[-1]).items()}


def time_only(model_path, args):
    """The --time-only mode: one JSON line {atoms: [wall, cpu]} for a saved model."""
    import gapfit
    import numba
    from threadpoolctl import threadpool_limits
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    threadpool_limits(limits=args.threads)
    train = (None if model_path.is_file() else
             gapfit.io.read_mlearn(args.data_dir / "Mo_train.json")[::args.stride])
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the one JSON line
        model = fit_gapfit(train, args.n_sparse, model_path)
    result = {}
    for repeat in args.repeats:
        atoms = bcc_supercell(repeat)
        result[len(atoms)] = time_calls(atoms.copy(), gapfit_timer(model), args.calls,
                                        args.displacement)
    print(json.dumps(result))
    return 0


def before_and_after(before, workdir, args):
    """Best-of-rounds µs/atom of an older tree and of this one, timed alternately; each tree
    fits the benchmark's recipe on the same data with the same seed (with its own defaults,
    e.g. the ZBL baseline that later gapfit adds) into its own model file."""
    this_tree = Path(__file__).resolve().parents[1]
    trees = {"before": Path(before).resolve(), "after": this_tree}
    models = {"before": workdir / "gapfit_mo_before.gap", "after": workdir / "gapfit_mo.gap"}
    best = {name: {} for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            for size, times in time_tree(tree, models[name], args.repeats, args.calls,
                                         args.displacement, args.threads,
                                         args.data_dir / "Mo_train.json", args.stride,
                                         args.n_sparse).items():
                previous = best[name].get(size, (np.inf, np.inf))
                best[name][size] = (min(previous[0], times[0]), min(previous[1], times[1]))
    print(f"\nbefore ({trees['before']}) and after ({this_tree}), best of {args.rounds} "
          f"alternating rounds, each the median of {args.calls} calls, µs per atom per call")
    print(f"{'atoms':>7}{'before wall':>13}{'after wall':>12}{'before cpu':>12}"
          f"{'after cpu':>11}{'after/before cpu':>18}")
    for size in best["after"]:
        old, new = best["before"][size], best["after"][size]
        print(f"{size:>7}{old[0]:>13.1f}{new[0]:>12.1f}{old[1]:>12.1f}{new[1]:>11.1f}"
              f"{new[1] / old[1]:>18.2f}", flush=True)
    return best["after"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=MLEARN)
    parser.add_argument("--stride", type=int, default=6,
                        help="fit on Mo_train[::stride] (default 6: 33 configurations)")
    parser.add_argument("--n-sparse", type=int, default=1000, help="SOAP sparse points")
    parser.add_argument("--repeats", type=int, nargs="+", default=[4, 8],
                        help="bcc supercells repeat³ × 2 atoms compared with QUIP (128, 1,024)")
    parser.add_argument("--scaling", type=int, nargs="+", default=[4, 8, 12, 17],
                        help="gapfit-only scaling row (default up to 9,826 atoms)")
    parser.add_argument("--calls", type=int, default=9,
                        help="timed calls per size (their median is reported)")
    parser.add_argument("--displacement", type=float, default=0.002,
                        help="Å, random move before each call")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the fitted models here and reuse them on the next run")
    parser.add_argument("--no-quip", action="store_true", help="gapfit rows only")
    parser.add_argument("--uncertainty-repeats", type=int, nargs="*", default=[4, 8, 14],
                        help="sizes of the uncertainty table (default 128, 1,024, 5,488 atoms)")
    parser.add_argument("--only-uncertainty", action="store_true",
                        help="fit or reuse the gapfit model and print the uncertainty table only")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for numba, BLAS and OpenMP (default 1: one core each)")
    parser.add_argument("--before", type=Path, default=None,
                        help="an older gapfit source tree to time against this one")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of --before timings (best is shown)")
    parser.add_argument("--time-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.time_only is not None:
        return time_only(args.time_only, args)
    limit_threads(args.threads)

    train_path = args.data_dir / "Mo_train.json"
    if not train_path.is_file():
        print(f"skipped: {train_path} not found (the mlearn data live in ../shared/data/mlearn)")
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="md_speed_"))
    workdir.mkdir(parents=True, exist_ok=True)
    train = quip.load_mlearn(train_path)[::args.stride]
    print(f"training subset Mo_train[::{args.stride}]: {len(train)} configurations, "
          f"{sum(map(len, train))} atoms; workdir {workdir}")
    model = fit_gapfit(train, args.n_sparse, workdir / "gapfit_mo.gap")
    if args.only_uncertainty:
        uncertainty_table(workdir / "gapfit_mo.gap", args.uncertainty_repeats, args.calls,
                          args.displacement, args.threads)
        return 0
    use_quip = not args.no_quip and quip.have_quip()
    if not args.no_quip and not use_quip:
        print("QUIP rows skipped: quippy-ase (quippy.potential and gap_fit) is not installed; "
              "pip install quippy-ase to compare")
    gp_file = fit_quip(train, args.n_sparse, workdir / "quip") if use_quip else None
    if args.before is not None:
        before_and_after(args.before, workdir, args)

    print(f"\nenergy+forces+stress per call, µs per atom (median of {args.calls} calls, "
          f"{args.displacement} Å moves between calls, {args.threads} thread(s))")
    header = f"{'atoms':>7}{'gapfit wall':>13}{'gapfit cpu':>12}"
    if use_quip:
        header += f"{'QUIP wall':>11}{'QUIP cpu':>10}{'ratio wall':>12}{'ratio cpu':>11}"
    print(header)
    for repeat in args.repeats:
        atoms = bcc_supercell(repeat)
        ours = time_calls(atoms.copy(), gapfit_timer(model), args.calls, args.displacement)
        row = f"{len(atoms):>7}{ours[0]:>13.1f}{ours[1]:>12.1f}"
        if use_quip:
            calls = max(1, min(args.calls, 3))
            theirs = time_calls(atoms.copy(), quip_timer(gp_file), calls, args.displacement)
            row += (f"{theirs[0]:>11.0f}{theirs[1]:>10.0f}"
                    f"{ours[0] / theirs[0]:>12.4f}{ours[1] / theirs[1]:>11.4f}")
        print(row, flush=True)
    if use_quip:
        atoms = bcc_supercell(args.repeats[0])
        print(f"(force RMS difference gapfit vs QUIP model on {len(atoms)} atoms: "
              f"{agreement(model, gp_file, atoms):.0f} meV/Å; different fits of the same recipe)")

    print("\ngapfit scaling, µs per atom per call")
    print(f"{'atoms':>7}{'wall':>9}{'cpu':>9}{'wall, fresh search':>20}")
    for repeat in args.scaling:
        atoms = bcc_supercell(repeat)
        calls = args.calls if len(atoms) <= 2000 else max(2, args.calls // 2)
        reused = time_calls(atoms.copy(), gapfit_timer(model), calls, args.displacement)
        fresh = time_calls(atoms.copy(), gapfit_timer(model, skin=0.0), calls, args.displacement)
        print(f"{len(atoms):>7}{reused[0]:>9.1f}{reused[1]:>9.1f}{fresh[0]:>20.1f}", flush=True)

    uncertainty_table(workdir / "gapfit_mo.gap", args.uncertainty_repeats, args.calls,
                      args.displacement, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
