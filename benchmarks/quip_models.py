"""The same gap_fit model evaluated by quippy and by gapfit (``gapfit.load``): agreement and speed.

The model is the ANCHORS recipe (/work/shared/ANCHORS.md: distance_2b ard_se + soap n_max=8
l_max=6 cutoff 5 Å, 1000 CUR points) fitted by gap_fit on mlearn Mo_train[::stride] (default
stride 5: the full set takes gap_fit 13.5 min on an idle machine; the evaluation cost does
not depend on how much data the fit saw, only on the recipe), or any XML given by --model.
Both codes evaluate rattled bcc Mo cells of 128 and 1,024 atoms, one thread each: energy
and forces (and gapfit's stress), with the largest differences and µs/atom per call.

    PYTHONPATH=. python benchmarks/quip_models.py [--model gap.xml] [--stride 5] [--calls 3]
    PYTHONPATH=. python benchmarks/quip_models.py --energies-only   # quick fit, same cost

Measured 2026-12-01 on the shared 2-core machine, CPU µs/atom per energy+forces+stress
call, one thread each. The ANCHORS recipe fitted by gap_fit with energies, forces and
virials on Mo_train[::5] (39 configurations, 2,019 atoms; 2,438 s under load ~40;
1,020 sparse points), ``--model`` of that file (wall ≈ CPU in this run):

| atoms | max ΔE (meV/atom) | rel. ΔE | max ΔF (meV/Å) | max Δstress (GPa) | quippy | gapfit | ratio |
|---|---|---|---|---|---|---|---|
| 128 | 1.7e-09 | 1.6e-13 | 6.9e-08 | 4.3e-11 | 5,231 | 106 | 0.020 |
| 1,024 | 4.0e-09 | 3.7e-13 | 8.9e-08 | 2.1e-11 | 5,936 | 145 | 0.024 |

The same recipe fitted to energies only (``--energies-only``, same cost to evaluate; load ~40,
wall ~20× CPU): ratio 0.028 (128 atoms) and 0.018 (1,024 atoms).
"""
import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # quippy: one thread (before it is imported)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._quip_reference import have_quip, load_mlearn, run_gap_fit  # noqa: E402

MLEARN = Path(os.environ.get("GAPFIT_MLEARN", "/work/shared/data/mlearn"))


def bcc_mo(repeat, seed):
    from ase.build import bulk
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(repeat)
    atoms.rattle(stdev=0.05, seed=seed)
    return atoms


def time_calls(calculator, atoms, n_calls, displacement=1e-3, seed=0):
    """(CPU, wall) µs per atom per energy+forces+stress call of an ASE calculator.

    One warm-up call is not counted; before each call the atoms move by a small random
    displacement so nothing is reused. CPU time (this process) is the fairer figure on a
    shared machine: both codes run on one thread."""
    from ase import Atoms
    atoms = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    atoms.calc = calculator
    rng = np.random.default_rng(seed)
    atoms.get_forces()
    cpu = wall = 0.0
    for _ in range(n_calls):
        atoms.positions = atoms.positions + rng.normal(scale=displacement, size=(len(atoms), 3))
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
        cpu += time.process_time() - cpu_start
        wall += time.perf_counter() - wall_start
    scale = 1e6 / n_calls / len(atoms)
    return cpu * scale, wall * scale


def fit_energies_only(train, workdir):
    """gap_fit with the ANCHORS recipe on energies alone (no force or virial labels)."""
    import subprocess
    from benchmarks._quip_reference import gap_fit_command, write_gap_fit_xyz
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    write_gap_fit_xyz(train, workdir / "train.xyz")
    argv = [a for a in gap_fit_command(workdir / "train.xyz", workdir / "gap.xml",
                                       use_virial=False)
            if not a.startswith("force_parameter_name")]
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=workdir, capture_output=True, text=True)
    (workdir / "gap_fit.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"gap_fit failed in {workdir}: {result.stdout[-2000:]}")
    print(f"gap_fit (energies only): {time.perf_counter() - started:.0f} s")
    return workdir / "gap.xml"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a gap_fit XML model (default: fit the ANCHORS recipe)")
    parser.add_argument("--stride", type=int, default=5, help="Mo_train[::stride] for the fit")
    parser.add_argument("--workdir", default="quip_models_work", help="where gap_fit runs")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per size")
    parser.add_argument("--energies-only", action="store_true",
                        help="fit the recipe to energies only (same descriptors, kernels and "
                             "1,000 + 20 sparse points, so the same evaluation cost; gap_fit "
                             "needs ~1.5 min instead of many on a busy machine)")
    args = parser.parse_args(argv)
    if not have_quip():
        print("quippy-ase is not installed (pip install quippy-ase); nothing to compare")
        return 1
    import gapfit
    from gapfit.fit.threads import single_thread
    from quippy.potential import Potential

    if args.model:
        path = Path(args.model)
        print(f"model: {path}")
    else:
        train = load_mlearn(MLEARN / "Mo_train.json")[::args.stride]
        print(f"fitting the ANCHORS recipe with gap_fit on Mo_train[::{args.stride}] "
              f"({len(train)} configurations, {sum(len(a) for a in train)} atoms) ...")
        if args.energies_only:
            path = fit_energies_only(train, Path(args.workdir))
        else:
            fit = run_gap_fit(train, args.workdir)
            path = Path(fit["gp_file"])
            print(f"gap_fit: {fit['wall_s']:.0f} s, peak {fit['peak_rss_mb']:.0f} MB -> {path}")
    started = time.perf_counter()
    model = gapfit.load(path)
    print(f"gapfit.load: {time.perf_counter() - started:.2f} s, terms "
          f"{[type(t).__name__ for t in model.terms_]}, "
          f"{model.alpha_.size} sparse points")

    rows = []
    for repeat, seed in (((4, 4, 4), 1), ((8, 8, 8), 2)):
        atoms = bcc_mo(repeat, seed)
        reference = atoms.copy()
        reference.calc = Potential(param_filename=str(path))
        ours = atoms.copy()
        ours.calc = gapfit.GAPCalculator(model)
        e_ref, f_ref = reference.get_potential_energy(), reference.get_forces()
        s_ref = reference.get_stress()
        e_ours, f_ours, s_ours = ours.get_potential_energy(), ours.get_forces(), ours.get_stress()
        quip_cpu, quip_wall = time_calls(Potential(param_filename=str(path)), atoms, args.calls)
        with single_thread():
            ours_cpu, ours_wall = time_calls(gapfit.GAPCalculator(model), atoms, args.calls)
        rows.append((len(atoms), abs(e_ours - e_ref) / len(atoms) * 1e3,
                     abs(e_ours - e_ref) / abs(e_ref), np.abs(f_ours - f_ref).max() * 1e3,
                     np.abs(s_ours - s_ref).max() * 160.21766, quip_cpu, quip_wall, ours_cpu,
                     ours_wall))
    print()
    print("| atoms | max ΔE (meV/atom) | rel. ΔE | max ΔF (meV/Å) | max Δstress (GPa) "
          "| quippy µs/atom CPU (wall) | gapfit µs/atom CPU (wall) | ratio CPU (wall) |")
    print("|---|---|---|---|---|---|---|---|")
    for n, de, rel, df, ds, q_cpu, q_wall, o_cpu, o_wall in rows:
        print(f"| {n} | {de:.2e} | {rel:.1e} | {df:.2e} | {ds:.1e} | {q_cpu:,.0f} ({q_wall:,.0f}) "
              f"| {o_cpu:,.1f} ({o_wall:,.1f}) | {o_cpu / q_cpu:.3f} ({o_wall / q_wall:.3f}) |")
    print("\nper call: energy + forces + stress through each code's ASE calculator (quippy's "
          "Potential, gapfit.GAPCalculator), one thread each (OMP_NUM_THREADS=1; numba and "
          "BLAS limited to 1); target ratio <= 0.05")
    return 0


if __name__ == "__main__":
    sys.exit(main())
