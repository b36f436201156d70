"""gapfit against QUIP's gap_fit: the same recipe, the same training data, the same machine, one run.

    python benchmarks/vs_gap_fit.py                   # Mo_train[::5] (39 configurations), seeds 1, 2
    python benchmarks/vs_gap_fit.py --stride 1 --seeds 1   # the full Mo training set
    python benchmarks/vs_gap_fit.py --threads 1       # gapfit on one core, as gap_fit runs
    python benchmarks/vs_gap_fit.py --quip-soap       # gapfit with QUIP's own descriptors

Recipe (ANCHORS.md): distance_2b (cutoff 5 Å, gap_fit's default 0.5 Å transition width, δ 1 eV,
θ 1 Å, 20 uniform sparse points) + SOAP (n_max 8, l_max 6, cutoff 5 Å with a 1 Å cosine
transition, σ 0.5 Å, ζ 4, δ 0.2 eV, CUR sparse points), sigmas 0.002 eV/atom, 0.05 eV/Å,
0.05 eV/atom, e0 average, sparse jitter 1e-8, energies, forces and virials. In gapfit that is
``TwoBody(transition_width=0.5)`` + ``SOAP(weighting="cosine", delta=0.2)``: gap_fit weighs the
neighbour density with its cosine cutoff function (``cutoff_transition_width``), which
gapfit's "cosine" weighting is; gapfit's default "poly" weighting is another descriptor.
Each fit runs in its own process; its wall time and peak RSS are measured from outside
(benchmarks/_memory.py). Both models are then evaluated on the whole Mo test set. Needs
``pip install quippy-ase`` (benchmark extra) and ../shared/data/mlearn.

With ``--quip-soap`` gapfit fits ``QuipDistance2b`` + ``QuipSOAP`` (the features gap_fit uses,
equal to quippy's to ~1e-14) with gap_fit's conventions (``virial_weighting="voigt"``,
``sparse_jitter_relative=False``, no ZBL baseline), so only the sparse points each code draws
differ: given gap_fit's sparse points, gapfit's solve predicts what gap_fit's model predicts
(tests/test_quip_models.py). Measured 2026-12-02 (2 cores at load ~8; gap_fit one core, gapfit
both), Mo test set (23 configurations), E / F / S MAE in meV/atom, meV/Å, GPa:

    --quip-soap --stride 5 --seeds 1,2   gap_fit 3.139 / 115.36 / 0.267   gapfit 3.128 / 115.10 / 0.266
        fit 1,353 s vs 169 s (0.125x), peak 1,270 vs 626 MB (0.49x); gapfit <= gap_fit on both seeds
    --quip-soap --stride 1 --seeds 1     gap_fit 2.120 / 104.04 / 0.219   gapfit 2.051 / 103.91 / 0.217
        fit 2,021 s vs 53 s (0.026x), peak 6,045 vs 495 MB (0.082x); E difference -0.069 meV/atom,
        paired bootstrap 95% interval [-0.137, -0.009]

Each code is fitted once per seed (gap_fit ``rnd_seed``, gapfit ``random_state``), the seeds
drawing the CUR sparse points, and the test errors are compared seed by seed and as means.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory import measure_call  # noqa: E402
from _quip_reference import (have_quip, load_mlearn, prediction_errors,  # noqa: E402
                             quip_predict, run_gap_fit)

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"


def recipe_terms(n_sparse, quip_soap):
    """gap_fit's recipe as gapfit terms: gapfit's own descriptors, or (``quip_soap``) QUIP's
    (``QuipDistance2b`` + ``QuipSOAP``: the same features as gap_fit, so only the fits differ)."""
    import gapfit
    if quip_soap:
        return [gapfit.QuipDistance2b(cutoff=5.0, cutoff_transition_width=0.5, delta=1.0,
                                      theta_uniform=1.0, n_sparse=20, sparse_method="uniform"),
                gapfit.QuipSOAP(cutoff=5.0, cutoff_transition_width=1.0, n_max=8, l_max=6,
                                atom_sigma=0.5, zeta=4, delta=0.2, n_sparse=n_sparse,
                                sparse_method="cur_points")]
    # gap_fit's recipe spelled out (gapfit's own defaults: 1 Å 2-body transition, "poly" SOAP
    # weighting, SOAP delta 0.5 eV)
    return [gapfit.TwoBody(cutoff=5.0, transition_width=0.5, theta=1.0, delta=1.0,
                           n_sparse=20, sparse_method="uniform"),
            gapfit.SOAP(r_cut=5.0, n_max=8, l_max=6, sigma=0.5, zeta=4, delta=0.2,
                        weighting="cosine", transition_width=1.0,
                        n_sparse=n_sparse, sparse_method="cur")]


def fit_gapfit(train_path, stride, n_sparse, threads, model_path, seed, quip_soap=False):
    """Child process: read, fit gap_fit's recipe, save; returns the fit time (s)."""
    if threads:
        import numba
        from threadpoolctl import threadpool_limits
        numba.set_num_threads(threads)
        threadpool_limits(threads)
    import gapfit
    train = gapfit.io.read_mlearn(train_path)[::stride]
    start = time.perf_counter()
    # with QUIP's descriptors the fit follows gap_fit's conventions too: no ZBL baseline
    # (gap_fit's recipe has none; the model is then exportable), each Voigt virial component
    # weighed with the virial sigma and the jitter in eV² (with gap_fit's own sparse points
    # the fit then gives gap_fit's model: tests/test_quip_models.py)
    conventions = ({"repulsion": None, "virial_weighting": "voigt",
                    "sparse_jitter_relative": False} if quip_soap else {})
    model = gapfit.GAP(terms=recipe_terms(n_sparse, quip_soap),
                       energy_sigma=0.002, force_sigma=0.05, virial_sigma=0.05, e0="average",
                       sparse_jitter=1e-8, random_state=seed, **conventions)
    model.fit(train)
    seconds = time.perf_counter() - start
    model.save(model_path)
    return seconds


def gapfit_predict(model_path, test):
    """Energies, forces and stresses of the gapfit model on ``test`` (ASE units)."""
    import gapfit
    model = gapfit.load(model_path)
    energies, forces, stresses = [], [], []
    for reference in test:
        atoms = reference.copy()
        atoms.calc = gapfit.GAPCalculator(model)
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
        stresses.append(atoms.get_stress() if atoms.pbc.all() else None)
    return energies, forces, stresses


def errors_by_group(test, predictions):
    """prediction_errors overall ("all") and per config_type."""
    groups = {"all": list(range(len(test)))}
    for index, atoms in enumerate(test):
        groups.setdefault(atoms.info.get("config_type", "default"), []).append(index)
    return {name: prediction_errors([test[i] for i in members],
                                    *[[values[i] for i in members] for values in predictions])
            for name, members in groups.items()}


ERROR_ROWS = [("energy_mae", "test E MAE (meV/atom)"), ("energy_rmse", "test E RMSE (meV/atom)"),
              ("force_mae", "test F MAE (meV/Å)"), ("force_rmse", "test F RMSE (meV/Å)"),
              ("stress_mae", "test S MAE (GPa)")]
TARGET_ERRORS = {"energy_mae": "E MAE", "force_mae": "F MAE", "stress_mae": "S MAE"}


def energy_errors(test, energies):
    """|predicted - DFT| energy per atom of every test configuration, meV/atom."""
    return np.array([abs(energy - atoms.get_potential_energy()) / len(atoms) * 1e3
                     for atoms, energy in zip(test, energies)])


def paired_energy_comparison(quip_errors, our_errors, resamples=20000, seed=0):
    """Difference of the energy MAEs (gapfit - gap_fit, meV/atom), its 95% interval over
    bootstrap resamples of the test configurations (both codes on the same resample), and the
    number of configurations where gapfit is closer."""
    picks = np.random.default_rng(seed).integers(0, len(quip_errors), (resamples, len(quip_errors)))
    differences = our_errors[picks].mean(axis=1) - quip_errors[picks].mean(axis=1)
    low, high = np.percentile(differences, [2.5, 97.5])
    return our_errors.mean() - quip_errors.mean(), low, high, int((our_errors < quip_errors).sum())


def run_seed(seed, train, train_path, test, args, workdir):
    """Fit both codes with one seed; returns their fit measurements and per-group errors."""
    seed_dir = workdir / f"seed_{seed}"
    quip = run_gap_fit(train, seed_dir / "gap_fit", reuse=args.reuse, n_sparse_soap=args.n_sparse,
                       rnd_seed=seed)
    predictions = quip_predict(quip["gp_file"], test)
    quip["groups"] = errors_by_group(test, predictions)
    quip["energy_errors"] = energy_errors(test, predictions[0])
    model_path = seed_dir / "gapfit.gap"
    fit_seconds, wall, peak = measure_call(fit_gapfit, str(train_path), args.stride, args.n_sparse,
                                           args.threads, str(model_path), seed, args.quip_soap)
    predictions = gapfit_predict(model_path, test)
    ours = {"wall_s": wall, "fit_s": fit_seconds, "peak_rss_mb": peak,
            "groups": errors_by_group(test, predictions),
            "energy_errors": energy_errors(test, predictions[0])}
    for name, run in (("gap_fit", quip), ("gapfit", ours)):
        errors = run["groups"]["all"]
        print(f"seed {seed:>3} {name:<8} {run['wall_s']:>8.1f} s {run['peak_rss_mb']:>7.0f} MB   "
              f"E {errors['energy_mae']:.2f} meV/atom  F {errors['force_mae']:.1f} meV/Å  "
              f"S {errors['stress_mae']:.3f} GPa", flush=True)
    return quip, ours


def print_summary(seeds, quip_runs, our_runs, threads):
    """Per-seed errors, means over seeds, ratios and the verdict against the issue's target."""
    def mean(runs, key, group="all"):
        return float(np.mean([run["groups"][group][key] for run in runs]))

    print(f"\n{'seed':<6}" + "".join(f"{label:>22}" for label in TARGET_ERRORS.values()))
    print(f"{'':<6}" + "".join(f"{'gap_fit':>12}{'gapfit':>10}" for _ in TARGET_ERRORS))
    for seed, quip, ours in zip(seeds, quip_runs, our_runs):
        theirs, mine = quip["groups"]["all"], ours["groups"]["all"]
        print(f"{seed:<6}" + "".join(f"{theirs[key]:>12.3f}{mine[key]:>10.3f}" for key in TARGET_ERRORS))

    quip_wall = float(np.mean([run["wall_s"] for run in quip_runs]))
    our_wall = float(np.mean([run["wall_s"] for run in our_runs]))
    quip_peak = max(run["peak_rss_mb"] for run in quip_runs)
    our_peak = max(run["peak_rss_mb"] for run in our_runs)
    print(f"\nmeans over {len(seeds)} seeds {list(seeds)}")
    print(f"{'':<28}{'gap_fit':>12}{'gapfit':>12}{'ratio':>8}{'seeds won':>11}")
    print(f"{'fit wall time (s)':<28}{quip_wall:>12.1f}{our_wall:>12.1f}{our_wall / quip_wall:>8.3f}")
    print(f"{'peak memory (MB, max)':<28}{quip_peak:>12.0f}{our_peak:>12.0f}{our_peak / quip_peak:>8.3f}")
    verdict = our_wall <= 0.2 * quip_wall and our_peak <= 0.5 * quip_peak
    for key, label in ERROR_ROWS:
        theirs, ours = mean(quip_runs, key), mean(our_runs, key)
        won = sum(o["groups"]["all"][key] <= q["groups"]["all"][key] for q, o in zip(quip_runs, our_runs))
        print(f"{label:<28}{theirs:>12.3f}{ours:>12.3f}{ours / theirs:>8.3f}{won:>8}/{len(seeds)}")
        if key in TARGET_ERRORS:
            verdict = verdict and ours <= theirs

    print("\nenergy MAE, gapfit - gap_fit (meV/atom), paired over the test configurations:")
    for seed, quip, ours in zip(seeds, quip_runs, our_runs):
        difference, low, high, closer = paired_energy_comparison(quip["energy_errors"],
                                                                 ours["energy_errors"])
        print(f"  seed {seed}: {difference:+.3f}, bootstrap 95% interval [{low:+.3f}, {high:+.3f}]; "
              f"gapfit closer on {closer}/{len(quip['energy_errors'])} configurations")

    print(f"\n{'per config_type (means)':<24}{'E MAE gap_fit':>14}{'gapfit':>8}"
          f"{'F MAE gap_fit':>15}{'gapfit':>8}")
    for name in quip_runs[0]["groups"]:
        if name != "all":
            print(f"{name:<24}{mean(quip_runs, 'energy_mae', name):>14.2f}"
                  f"{mean(our_runs, 'energy_mae', name):>8.2f}"
                  f"{mean(quip_runs, 'force_mae', name):>15.1f}{mean(our_runs, 'force_mae', name):>8.1f}")
    print(f"(gapfit threads: {threads or 'all'}; gap_fit runs on one core; wall time includes reading "
          f"the data and process start-up for both)")
    print(f"target (≤0.2× time, ≤0.5× memory, mean E, F and S MAE ≤ gap_fit's): "
          f"{'met' if verdict else 'NOT met'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--element", default="Mo")
    parser.add_argument("--stride", type=int, default=5, help="fit on train[::stride] (default 5)")
    parser.add_argument("--n-sparse", type=int, default=1000, help="SOAP sparse points")
    parser.add_argument("--seeds", default="1,2",
                        help="comma-separated seeds: gap_fit rnd_seed and gapfit random_state (default 1,2)")
    parser.add_argument("--threads", type=int, default=0,
                        help="limit gapfit to this many threads (default: all cores)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--quip-soap", action="store_true",
                        help="fit gapfit with QUIP's descriptors (QuipDistance2b + QuipSOAP): "
                             "identical features, so the comparison is of the fits alone")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse gap_fit models (and their measured time and memory) fitted "
                             "in --workdir by an earlier run with the same command and data")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    train_path = MLEARN / f"{args.element}_train.json"
    if not train_path.is_file():
        print(f"skipped: mlearn data not found at {MLEARN}")
        return 0
    if not have_quip():
        print("skipped: quippy-ase is not installed (pip install -e '.[benchmark]')")
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vs_gap_fit_"))
    train = load_mlearn(train_path)[::args.stride]
    test = load_mlearn(MLEARN / f"{args.element}_test.json")
    print(f"{args.element}_train[::{args.stride}]: {len(train)} configurations, "
          f"{sum(map(len, train))} atoms; test {len(test)} configurations; workdir {workdir}",
          flush=True)
    runs = [run_seed(seed, train, train_path, test, args, workdir) for seed in seeds]
    print_summary(seeds, [quip for quip, _ in runs], [ours for _, ours in runs], args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
