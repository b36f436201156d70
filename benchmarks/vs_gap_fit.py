"""gapfit against QUIP's gap_fit: the same recipe, the same training data, the same machine, one run.

    python benchmarks/vs_gap_fit.py                 # Mo_train[::5] (39 configurations)
    python benchmarks/vs_gap_fit.py --stride 1      # the full Mo training set (194 configurations)
    python benchmarks/vs_gap_fit.py --threads 1     # gapfit on one core, as gap_fit runs

Recipe (ANCHORS.md): distance_2b (cutoff 5 Å, δ 1 eV, θ 1 Å, 20 uniform sparse points) +
SOAP (n_max 8, l_max 6, r_cut 5 Å, σ 0.5 Å, ζ 4, δ 0.2 eV, CUR sparse points), sigmas
0.002 eV/atom, 0.05 eV/Å, 0.05 eV/atom, e0 average, sparse jitter 1e-8, energies, forces
and virials (gapfit's defaults differ only in the SOAP delta, 0.5 eV). Each fit runs in its own process; its wall
time and peak RSS are measured from outside (benchmarks/_memory.py). Both models are then
evaluated on the whole Mo test set. Needs ``pip install quippy-ase`` (benchmark extra) and
../shared/data/mlearn.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory import measure_call  # noqa: E402
from _quip_reference import (have_quip, load_mlearn, prediction_errors,  # noqa: E402
                             quip_predict, run_gap_fit)

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"


def fit_gapfit(train_path, stride, n_sparse, threads, model_path):
    """Child process: read, fit the default recipe, save; returns the fit time (s)."""
    if threads:
        import numba
        from threadpoolctl import threadpool_limits
        numba.set_num_threads(threads)
        threadpool_limits(threads)
    import gapfit
    train = gapfit.io.read_mlearn(train_path)[::stride]
    start = time.perf_counter()
    # gap_fit's recipe spelled out (gapfit's own default SOAP delta is 0.5 eV, not 0.2)
    model = gapfit.GAP(terms=[gapfit.TwoBody(cutoff=5.0, transition_width=1.0, theta=1.0, delta=1.0,
                                             n_sparse=20, sparse_method="uniform"),
                              gapfit.SOAP(r_cut=5.0, n_max=8, l_max=6, sigma=0.5, zeta=4, delta=0.2,
                                          n_sparse=n_sparse, sparse_method="cur")],
                       energy_sigma=0.002, force_sigma=0.05, virial_sigma=0.05, e0="average",
                       sparse_jitter=1e-8, random_state=0)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--element", default="Mo")
    parser.add_argument("--stride", type=int, default=5, help="fit on train[::stride] (default 5)")
    parser.add_argument("--n-sparse", type=int, default=1000, help="SOAP sparse points")
    parser.add_argument("--threads", type=int, default=0,
                        help="limit gapfit to this many threads (default: all cores)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
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

    quip = run_gap_fit(train, workdir / "gap_fit", n_sparse_soap=args.n_sparse)
    quip_groups = errors_by_group(test, quip_predict(quip["gp_file"], test))
    quip_errors = quip_groups["all"]
    print(f"gap_fit: {quip['wall_s']:.1f} s, {quip['peak_rss_mb']:.0f} MB", flush=True)

    model_path = workdir / "gapfit.gap"
    fit_seconds, wall, peak = measure_call(fit_gapfit, str(train_path), args.stride, args.n_sparse,
                                           args.threads, str(model_path))
    our_groups = errors_by_group(test, gapfit_predict(model_path, test))
    ours = our_groups["all"]
    print(f"gapfit: {wall:.1f} s (fit alone {fit_seconds:.1f} s), {peak:.0f} MB", flush=True)

    threads = args.threads or "all"
    print(f"\n{'':<28}{'gap_fit':>12}{'gapfit':>12}{'ratio':>8}")
    print(f"{'fit wall time (s)':<28}{quip['wall_s']:>12.1f}{wall:>12.1f}"
          f"{wall / quip['wall_s']:>8.3f}")
    print(f"{'peak memory (MB)':<28}{quip['peak_rss_mb']:>12.0f}{peak:>12.0f}"
          f"{peak / quip['peak_rss_mb']:>8.3f}")
    for key, label in [("energy_mae", "test E MAE (meV/atom)"), ("energy_rmse", "test E RMSE (meV/atom)"),
                       ("force_mae", "test F MAE (meV/Å)"), ("force_rmse", "test F RMSE (meV/Å)"),
                       ("stress_mae", "test S MAE (GPa)")]:
        print(f"{label:<28}{quip_errors[key]:>12.3f}{ours[key]:>12.3f}"
              f"{ours[key] / quip_errors[key]:>8.3f}")
    print(f"\n{'per config_type':<20}{'E MAE gap_fit':>14}{'gapfit':>8}{'F MAE gap_fit':>15}{'gapfit':>8}")
    for name in quip_groups:
        if name != "all":
            print(f"{name:<20}{quip_groups[name]['energy_mae']:>14.2f}{our_groups[name]['energy_mae']:>8.2f}"
                  f"{quip_groups[name]['force_mae']:>15.1f}{our_groups[name]['force_mae']:>8.1f}")
    print(f"(gapfit threads: {threads}; gap_fit runs on one core; wall time includes reading "
          f"the data and process start-up for both)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
