"""Does choosing configurations by the model's uncertainty need fewer labels than choosing at random?

    python benchmarks/active_learning.py                 # both parts, 3 seeds each
    python benchmarks/active_learning.py --part pool     # (a) only
    python benchmarks/active_learning.py --part otf      # (b) only

(a) Pool-based, mlearn Mo (Zuo et al., J. Phys. Chem. A 124, 731 (2020), read from
../shared/data/mlearn): start from 10 random training configurations, then add 10 at a time
up to 60, chosen by ``gapfit.active.select`` (``--strategy``, default "batch": the largest
force uncertainty, conditioned on the picks so far; "coverage": the largest expected drop of the
whole pool's force variance; "uncertainty") or at random; the model is refitted on the
labelled set at every size (sparse points from that set) and its force MAE measured on the
whole Mo test set. Same 10 starting configurations for both, for each seed. The recipe is a
cheaper one than the default (printed with the results).

(b) On-the-fly, ASE's EMT as the oracle: ``gapfit.active.OnTheFly`` runs Langevin MD at 300,
650 and 1000 K in turn, starting from a model fitted to one labelled configuration, and calls
EMT whenever the largest predicted force std exceeds ``--threshold`` (it updates the model, and
refits with new sparse points when a label cannot lower the uncertainty). The baseline labels
snapshots of an EMT MD run over the same temperatures, picked at random. Both are judged alike:
after k oracle calls, the recipe is fitted to the start configuration plus the first k labels and
its force MAE against EMT measured on fresh MD snapshots (another arrangement, another seed).
Reported: oracle calls until the MAE is ≤ 50 meV/Å, per seed and median.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
SIZES = (10, 20, 30, 40, 50, 60)
TEMPERATURES_K = (300.0, 650.0, 1000.0)
TARGET_FORCE_MAE = 0.050  # eV/Å
OTF_SPARSE = 100


def force_mae(model, structures):
    """Force MAE (eV/Å) of ``model`` against the reference labels of ``structures``."""
    from gapfit.io import labels
    errors = [model.predict_structure(atoms).forces - labels(atoms)[1] for atoms in structures]
    return float(np.mean(np.abs(np.concatenate(errors))))


# ----------------------------------------------------------------------------- (a) pool
def pool_recipe(n_sparse, random_state, optimize=False):
    import gapfit
    return gapfit.GAP(terms=[gapfit.TwoBody(n_sparse=20),
                             gapfit.SOAP(n_max=6, l_max=4, n_sparse=n_sparse)],
                      random_state=random_state, optimize_hyperparameters=optimize)


def pool_curve(train, test, strategy, seed, n_sparse, score="forces", optimize=False):
    """Test force MAE (eV/Å) at every size of SIZES when growing the labelled set by ``strategy``."""
    from gapfit.active import select
    rng = np.random.default_rng(seed)
    labelled = rng.choice(len(train), SIZES[0], replace=False).tolist()
    curve, model = [], None
    for size in SIZES:
        if size > len(labelled):
            remaining = [i for i in range(len(train)) if i not in labelled]
            # the pool goes in without labels: Atoms.copy() leaves the calculator behind
            pool = [train[i].copy() for i in remaining]
            picks = select(model, pool, size - len(labelled), strategy=strategy, random_state=rng,
                           score=score)
            labelled += [remaining[p] for p in picks]
        model = pool_recipe(n_sparse, seed, optimize).fit([train[i] for i in labelled])
        curve.append(force_mae(model, test))
    return curve


def run_pool(seeds, strategy, n_sparse, score="forces", optimize=False):
    import gapfit
    train = gapfit.io.read_mlearn(MLEARN / "Mo_train.json")
    test = gapfit.io.read_mlearn(MLEARN / "Mo_test.json")
    print(f"\n(a) pool-based on mlearn Mo: {len(train)} training configurations, test force MAE on "
          f"{len(test)} test configurations; recipe TwoBody(n_sparse=20) + SOAP(n_max=6, l_max=4, "
          f"n_sparse={n_sparse}), {'optimised' if optimize else 'default'} sigmas and deltas, "
          f"refitted at every size; strategy {strategy}, "
          f"score {score}")
    curves = {strategy: [], "random": []}
    for seed in seeds:
        for name in curves:
            start = time.perf_counter()
            curves[name].append(pool_curve(train, test, name, seed, n_sparse, score, optimize))
            print(f"  seed {seed} {name:<12}" + "".join(f"{1e3 * v:7.1f}" for v in curves[name][-1])
                  + f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"\nforce MAE (meV/Å), mean over seeds {list(seeds)}")
    print(f"{'configurations':<16}" + "".join(f"{n:7d}" for n in SIZES))
    means = {name: 1e3 * np.mean(values, axis=0) for name, values in curves.items()}
    for name, values in means.items():
        print(f"{name:<16}" + "".join(f"{v:7.1f}" for v in values))
    lower = means[strategy][1:] < means["random"][1:]
    wins = np.mean(np.array(curves[strategy])[:, 1:] < np.array(curves["random"])[:, 1:], axis=0)
    print(f"{'seeds won':<16}{'':7}" + "".join(f"{w * len(seeds):5.0f}/{len(seeds)}" for w in wins))
    print(f"target: {strategy} lower than random at every size after the first step: "
          f"{'ok' if lower.all() else 'MISSED'}")


# ----------------------------------------------------------------------------- (b) on the fly
def otf_model(random_state):
    import gapfit
    return gapfit.GAP(terms=[gapfit.TwoBody(cutoff=5.0, n_sparse=20),
                             gapfit.SOAP(r_cut=4.5, n_max=4, l_max=3, n_sparse=OTF_SPARSE)],
                      energy_sigma=0.002, force_sigma=0.02, random_state=random_state)


def alloy_cell(symbols, lattice, rng, rattle=0.0):
    """A 2×2×2 cubic fcc cell (32 atoms) with a random arrangement of ``symbols``."""
    from ase.build import bulk
    atoms = bulk("Cu", "fcc", a=lattice, cubic=True).repeat(2)
    atoms.set_chemical_symbols(rng.choice(symbols, size=len(atoms)))
    atoms.positions += rattle * rng.standard_normal(atoms.positions.shape)
    return atoms


def oracle_md(atoms, steps_per_temperature, every, rng):
    """Langevin MD driven by EMT at each of TEMPERATURES_K; EMT-labelled snapshots every ``every`` steps."""
    from ase import units
    from ase.calculators.emt import EMT
    from ase.md.langevin import Langevin
    from gapfit.active import label
    from gapfit.md import initialise_velocities
    atoms = atoms.copy()
    atoms.calc = EMT()
    snapshots = []
    for temperature in TEMPERATURES_K:
        initialise_velocities(atoms, temperature, rng)
        dynamics = Langevin(atoms, 2.0 * units.fs, temperature_K=temperature,
                            friction=0.01 / units.fs, fixcm=False, rng=rng)
        for _ in range(steps_per_temperature // every):
            dynamics.run(every)
            snapshots.append(label(atoms, EMT()))
    return snapshots


def calls_to_target(start, labelled, test, seed):
    """Test MAE of the recipe fitted to ``start`` plus the first k labels, k = 0, 1, ... until
    the target is reached; returns (that k or None, the MAEs)."""
    maes = []
    for count in range(len(labelled) + 1):
        maes.append(force_mae(otf_model(seed).fit(start + labelled[:count]), test))
        if maes[-1] <= TARGET_FORCE_MAE:
            break
    reached = [k for k, mae in enumerate(maes) if mae <= TARGET_FORCE_MAE]
    return (reached[0] if reached else None), maes


def on_the_fly_labels(start, threshold, steps_per_temperature, seed, directory):
    """Every configuration OnTheFly gave to EMT over the temperature stages, in order."""
    import ase.io
    from ase.calculators.emt import EMT
    from gapfit.active import OnTheFly
    model, labelled, atoms = otf_model(seed).fit(start), [], start[0]
    for stage, temperature in enumerate(TEMPERATURES_K):
        run = OnTheFly(model, EMT(), Path(directory) / f"stage{stage}", threshold=threshold,
                       check_every=5, timestep_fs=2.0, temperature_K=temperature,
                       random_state=seed, training=start + labelled).run(atoms,
                                                                         steps_per_temperature)
        model, labelled = run.model, labelled + run.labelled
        atoms = ase.io.read(Path(directory) / f"stage{stage}" / "md.xyz")
    return labelled


def run_otf(seeds, system, threshold, steps_per_temperature):
    from gapfit.active import label
    from ase.calculators.emt import EMT
    symbols, lattice = {"Cu": (["Cu"], 3.61), "CuAu": (["Cu", "Au"], 3.85)}[system]
    print(f"\n(b) on the fly, EMT {system} (32 atoms), MD at {', '.join(f'{t:.0f}' for t in TEMPERATURES_K)}"
          f" K, {steps_per_temperature} steps of 2 fs each; threshold {1e3 * threshold:.0f} meV/Å on"
          f" the largest force std; target force MAE <= {1e3 * TARGET_FORCE_MAE:.0f} meV/Å")
    print(f"  recipe: TwoBody(n_sparse=20) + SOAP(r_cut=4.5, n_max=4, l_max=3, n_sparse={OTF_SPARSE}),"
          " energy_sigma 2 meV/atom, force_sigma 20 meV/Å; start: one EMT-labelled configuration")
    table = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        start = [label(alloy_cell(symbols, lattice, rng, rattle=0.05), EMT())]
        test_rng = np.random.default_rng(1000 + seed)
        test = oracle_md(alloy_cell(symbols, lattice, test_rng), steps_per_temperature, 50,
                         test_rng)
        begin = time.perf_counter()
        with tempfile.TemporaryDirectory() as directory:
            otf_labels = on_the_fly_labels(start, threshold, steps_per_temperature, seed,
                                           directory)
        otf_seconds = time.perf_counter() - begin
        otf_calls, otf_maes = calls_to_target(start, otf_labels, test, seed)
        snapshots = oracle_md(alloy_cell(symbols, lattice, rng), steps_per_temperature, 10, rng)
        order = rng.permutation(len(snapshots))
        random_calls, random_maes = calls_to_target(start, [snapshots[i] for i in order], test,
                                                    seed)
        table.append((seed, otf_calls, len(otf_labels), random_calls, len(snapshots)))
        print(f"  seed {seed}: start MAE {1e3 * otf_maes[0]:.0f} meV/Å on {len(test)} test snapshots;"
              f" on the fly {len(otf_labels)} calls ({otf_seconds:.0f} s), MAE after them"
              f" {' '.join(f'{1e3 * m:.0f}' for m in otf_maes[1:])}; random MAE "
              f"{' '.join(f'{1e3 * m:.0f}' for m in random_maes[1:])}", flush=True)

    def shown(calls, available):
        return f">{available}" if calls is None else str(calls)

    print(f"\noracle calls to reach force MAE <= {1e3 * TARGET_FORCE_MAE:.0f} meV/Å")
    print(f"{'seed':<6}{'on the fly':>12}{'random':>10}")
    for seed, otf_calls, n_otf, random_calls, n_random in table:
        print(f"{seed:<6}{shown(otf_calls, n_otf):>12}{shown(random_calls, n_random):>10}")
    # a seed that never reached the target counts as infinitely many calls
    otf_median = np.median([np.inf if row[1] is None else row[1] for row in table])
    random_median = np.median([np.inf if row[3] is None else row[3] for row in table])
    print(f"{'median':<6}{otf_median:>12g}{random_median:>10g}")
    print(f"target: on the fly at most half the calls of random: "
          f"{'ok' if 2 * otf_median <= random_median else 'MISSED'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["pool", "otf", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategy", choices=["batch", "uncertainty", "coverage"], default="batch")
    parser.add_argument("--n-sparse", type=int, default=200, help="SOAP sparse points in (a)")
    parser.add_argument("--score", choices=["forces", "forces_rms", "energy"], default="forces",
                        help="uncertainty score of a configuration in (a) (gapfit.active.select)")
    parser.add_argument("--optimize", action="store_true",
                        help="(a): the recipe optimises its sigmas and deltas by the marginal "
                             "likelihood at every size (both arms)")
    parser.add_argument("--system", choices=["Cu", "CuAu"], default="CuAu", help="EMT system in (b)")
    parser.add_argument("--threshold", type=float, default=0.1,
                        help="largest force std (eV/Å) above which (b) calls the oracle")
    parser.add_argument("--steps", type=int, default=150, help="MD steps per temperature in (b)")
    args = parser.parse_args(argv)
    if args.part in ("pool", "both"):
        if MLEARN.is_dir():
            run_pool(args.seeds, args.strategy, args.n_sparse, args.score, args.optimize)
        else:
            print(f"(a) skipped: mlearn data not found at {MLEARN}")
    if args.part in ("otf", "both"):
        run_otf(args.seeds, args.system, args.threshold, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
