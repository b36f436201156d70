"""Does choosing configurations by the model's uncertainty need fewer labels than choosing at random?

    python benchmarks/active_learning.py                 # both parts, 3 seeds each
    python benchmarks/active_learning.py --part pool     # (a) only
    python benchmarks/active_learning.py --part otf      # (b) only

(a) Pool-based, mlearn Mo (Zuo et al., J. Phys. Chem. A 124, 731 (2020), read from
../shared/data/mlearn): start from 10 random training configurations, then add 10 at a time
up to 60, chosen by ``gapfit.active.select`` (``--strategy``, default "batch": the largest
force uncertainty, conditioned on the picks so far; "coverage": the largest expected drop of the
whole pool's force variance; "uncertainty"; "largest_error", a yardstick that is no method:
the configurations the current fit gets most wrong, read from the pool's labels) or at random; the model is refitted on the
labelled set at every size (sparse points from that set) and its force MAE measured on the
whole Mo test set. Same 10 starting configurations for both, for each seed. The recipe is a
cheaper one than the default (printed with the results).

(b) On-the-fly, ASE's EMT as the oracle. System (``--system``, ``--cell``; default Cu-Ag-Au in
equal parts, randomly arranged on a 2x2x2 fcc cell with one vacancy, 31 atoms; "slab" is a
(111) slab with a vacancy). Schedule: Langevin MD through 300, 533, 767 and 1000 K, ``--steps``
steps of 2 fs at each, one continuous run with new velocities at each stage. Start: one
EMT-labelled configuration (the start cell rattled by 0.05 Å), the same for both arms.
  on the fly: ``gapfit.active.OnTheFly`` drives that schedule with the GAP from the start
  configuration, checks every ``--check-every`` steps and calls EMT when the uncertainty
  (``--otf-score``: "forces_rms" the root-mean-square force std, "forces" the largest) exceeds
  ``--threshold`` (it updates the model, and refits with new sparse points when a label cannot
  lower the uncertainty);
  random: an EMT-driven MD from the same start configuration through the same schedule,
  snapshots every 10 steps, labelled in random order.
Both are judged alike: after k oracle calls the recipe is fitted to the start configuration plus
the first k labels and its force MAE measured against EMT on fresh MD snapshots of the same kind
of cell (another arrangement, same composition, another seed, same schedule, every 25 steps).
Reported: oracle calls until the MAE is <= 50 meV/Å, per seed and median (a seed that never
gets there counts as infinitely many). ``--reference`` adds a yardstick that is not a method:
greedily label the snapshot of the random arm's MD on which the current fit errs most (it needs
every snapshot's label): a rough gauge of what choosing among those snapshots can gain.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
SIZES = (10, 20, 30, 40, 50, 60)
TEMPERATURES_K = (300.0, 533.0, 767.0, 1000.0)  # (b): a ramp in four stages
TARGET_FORCE_MAE = 0.050  # eV/Å
OTF_SPARSE = 100


def force_mae(model, structures):
    """Force MAE (eV/Å) of ``model`` against the reference labels of ``structures``."""
    from gapfit.structures.io import labels
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
    from gapfit.active.learning import select
    rng = np.random.default_rng(seed)
    labelled = rng.choice(len(train), SIZES[0], replace=False).tolist()
    curve, model = [], None
    for size in SIZES:
        if size > len(labelled):
            remaining = [i for i in range(len(train)) if i not in labelled]
            # the pool goes in without labels: Atoms.copy() leaves the calculator behind
            pool = [train[i].copy() for i in remaining]
            if strategy == "largest_error":
                # a yardstick, not a method: it reads the pool's labels
                errors = [force_mae(model, [train[i]]) for i in remaining]
                picks = np.argsort(errors)[::-1][:size - len(labelled)]
            else:
                picks = select(model, pool, size - len(labelled), strategy=strategy,
                               random_state=rng, score=score)
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
SYSTEMS = {"Cu": ("Cu",), "CuAu": ("Cu", "Au"), "CuAgAu": ("Cu", "Ag", "Au")}
CELLS = ("bulk", "vacancy", "slab")
LATTICE_CONSTANT = {"Cu": 3.59, "Ag": 4.06, "Au": 4.06}  # EMT's own fcc values (Å)
TIMESTEP_FS = 2.0
FRICTION_PER_FS = 0.01  # 1/fs: relaxation time 100 fs
POOL_INTERVAL = 10  # MD steps between the snapshots random selection draws from
TEST_INTERVAL = 25  # MD steps between test snapshots


def otf_model(random_state):
    import gapfit
    return gapfit.GAP(terms=[gapfit.TwoBody(cutoff=5.0, n_sparse=20),
                             gapfit.SOAP(r_cut=4.5, n_max=4, l_max=3, n_sparse=OTF_SPARSE)],
                      energy_sigma=0.002, force_sigma=0.02, random_state=random_state)


def alloy_cell(symbols, cell, rng):
    """A random arrangement of ``symbols`` in equal parts on fcc sites, lattice constant by
    Vegard's law: "bulk" a 2×2×2 cubic cell (32 atoms), "vacancy" the same less one atom
    (31), "slab" a 3×3 (111) slab of 4 layers with 6 Å of vacuum each side, less one atom
    (35; periodic in all three directions, so stresses stay defined)."""
    from ase.build import bulk, fcc111
    lattice = float(np.mean([LATTICE_CONSTANT[s] for s in symbols]))
    if cell == "slab":
        atoms = fcc111("Cu", (3, 3, 4), a=lattice, vacuum=6.0, periodic=True)
    else:
        atoms = bulk("Cu", "fcc", a=lattice, cubic=True).repeat(2)
    atoms.set_chemical_symbols(rng.permutation(np.resize(symbols, len(atoms))))
    if cell != "bulk":
        del atoms[int(rng.integers(len(atoms)))]
    return atoms


def oracle_md(atoms, steps_per_temperature, every, rng):
    """Langevin MD driven by EMT through TEMPERATURES_K in turn (one continuous run, new
    Maxwell–Boltzmann velocities at each stage), EMT-labelled snapshots every ``every`` steps
    (``info["temperature_K"]`` the stage's temperature)."""
    from ase import units
    from ase.calculators.emt import EMT
    from ase.md.langevin import Langevin
    from gapfit.active.learning import label
    from gapfit.md.dynamics import initialise_velocities
    atoms = atoms.copy()
    atoms.calc = EMT()
    snapshots = []
    for temperature in TEMPERATURES_K:
        initialise_velocities(atoms, temperature, rng)
        dynamics = Langevin(atoms, TIMESTEP_FS * units.fs, temperature_K=temperature,
                            friction=FRICTION_PER_FS / units.fs, fixcm=False, rng=rng)
        for _ in range(steps_per_temperature // every):
            dynamics.run(every)
            snapshot = label(atoms, EMT())
            snapshot.info["temperature_K"] = temperature
            snapshots.append(snapshot)
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


def largest_error_labels(start, snapshots, test, seed, max_calls):
    """A reference, not a method: add, one at a time, the snapshot on which the current fit
    has the largest force MAE (it needs every snapshot's oracle labels). Returns
    (calls to the target or None, the MAEs)."""
    chosen, maes = [], []
    for _ in range(max_calls + 1):
        model = otf_model(seed).fit(start + [snapshots[i] for i in chosen])
        maes.append(force_mae(model, test))
        if maes[-1] <= TARGET_FORCE_MAE:
            return len(chosen), maes
        errors = [-1.0 if i in chosen else force_mae(model, [snapshot])
                  for i, snapshot in enumerate(snapshots)]
        chosen.append(int(np.argmax(errors)))
    return None, maes


def on_the_fly_labels(start, settings, steps_per_temperature, seed, directory):
    """Every configuration OnTheFly gave to EMT over the temperature stages, in order; its MD
    starts from ``start[0]`` and runs on through the stages (new velocities at each)."""
    import ase.io
    from ase.calculators.emt import EMT
    from gapfit.active.learning import OnTheFly
    model, labelled, atoms = otf_model(seed).fit(start), [], start[0]
    for stage, temperature in enumerate(TEMPERATURES_K):
        run = OnTheFly(model, EMT(), Path(directory) / f"stage{stage}", timestep_fs=TIMESTEP_FS,
                       friction_per_fs=FRICTION_PER_FS, temperature_K=temperature,
                       random_state=seed, training=start + labelled, **settings).run(
                           atoms, steps_per_temperature)
        for configuration in run.labelled:
            configuration.info["temperature_K"] = temperature
        model, labelled = run.model, labelled + run.labelled
        atoms = ase.io.read(Path(directory) / f"stage{stage}" / "md.xyz")
    return labelled


def _shown(calls, available):
    return f">{available}" if calls is None else str(calls)


def _curve(maes):
    return " ".join(f"{1e3 * mae:.0f}" for mae in maes)


def run_otf(seeds, system, cell, settings, steps_per_temperature, reference=False):
    from threadpoolctl import threadpool_limits
    symbols = SYSTEMS[system]
    n_atoms = len(alloy_cell(symbols, cell, np.random.default_rng(0)))
    stages = ", ".join(f"{t:.0f}" for t in TEMPERATURES_K)
    print(f"\n(b) on the fly, EMT {system} ({cell}, {n_atoms} atoms), Langevin MD through {stages} K,"
          f" {steps_per_temperature} steps of {TIMESTEP_FS:g} fs at each; target force MAE <="
          f" {1e3 * TARGET_FORCE_MAE:.0f} meV/Å on fresh EMT MD snapshots (another arrangement,"
          f" another seed, every {TEST_INTERVAL} steps of the same schedule)")
    print(f"  on the fly: OnTheFly with score {settings['score']}, threshold"
          f" {1e3 * settings['threshold']:.0f} meV/Å, a check every {settings['check_every']} steps;"
          f" random: snapshots every {POOL_INTERVAL} steps of an EMT MD from the same start"
          f" configuration through the same schedule, in random order")
    print(f"  recipe: TwoBody(n_sparse=20) + SOAP(r_cut=4.5, n_max=4, l_max=3, n_sparse={OTF_SPARSE}),"
          " energy_sigma 2 meV/atom, force_sigma 20 meV/Å, refitted for every k; start: one"
          " EMT-labelled configuration (the start cell rattled by 0.05 Å)")
    table = []
    # matrices here are small: BLAS threads only contend with each other on a shared machine
    with threadpool_limits(limits=1, user_api="blas"):
        for seed in seeds:
            table.append(_otf_seed(seed, symbols, cell, settings, steps_per_temperature,
                                   reference))
    _print_otf_table(table, reference)


def _otf_seed(seed, symbols, cell, settings, steps_per_temperature, reference):
    """One seed of (b): the start, the test set, both arms (and the reference); prints the
    MAE curves and returns {arm: (calls to the target or None, calls available)}."""
    from ase.calculators.emt import EMT
    from gapfit.active.learning import label
    rng = np.random.default_rng(seed)
    atoms = alloy_cell(symbols, cell, rng)
    atoms.positions += 0.05 * rng.standard_normal(atoms.positions.shape)
    start = [label(atoms, EMT())]
    test_rng = np.random.default_rng(1000 + seed)
    test = oracle_md(alloy_cell(symbols, cell, test_rng), steps_per_temperature, TEST_INTERVAL,
                     test_rng)
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        otf_labels = on_the_fly_labels(start, settings, steps_per_temperature, seed, directory)
    otf_seconds = time.perf_counter() - begin
    otf_calls, otf_maes = calls_to_target(start, otf_labels, test, seed)
    snapshots = oracle_md(start[0], steps_per_temperature, POOL_INTERVAL, rng)
    shuffled = [snapshots[i] for i in rng.permutation(len(snapshots))]
    random_calls, random_maes = calls_to_target(start, shuffled, test, seed)
    row = {"seed": seed, "otf": (otf_calls, len(otf_labels)),
           "random": (random_calls, len(snapshots))}
    stages = " ".join(f"{a.info['temperature_K']:.0f}" for a in otf_labels)
    print(f"  seed {seed}: {len(test)} test snapshots, start MAE {1e3 * otf_maes[0]:.0f} meV/Å;"
          f" on the fly {len(otf_labels)} calls ({otf_seconds:.0f} s) at K: {stages}", flush=True)
    print(f"    MAE (meV/Å) after k = 1, 2, ... labels: on the fly {_curve(otf_maes[1:])};"
          f" random {_curve(random_maes[1:])}", flush=True)
    if reference:
        calls, maes = largest_error_labels(start, snapshots, test, seed, max_calls=8)
        row["reference"] = (calls, 8)
        print(f"    largest-error reference {_curve(maes[1:])}", flush=True)
    return row


def _print_otf_table(table, reference):
    columns = ["otf", "random"] + (["reference"] if reference else [])
    titles = {"otf": "on the fly", "random": "random", "reference": "largest error"}
    print(f"\noracle calls to reach force MAE <= {1e3 * TARGET_FORCE_MAE:.0f} meV/Å")
    print(f"{'seed':<6}" + "".join(f"{titles[c]:>15}" for c in columns))
    for row in table:
        print(f"{row['seed']:<6}" + "".join(f"{_shown(*row[c]):>15}" for c in columns))
    # a seed that never reached the target counts as infinitely many calls
    medians = {c: np.median([np.inf if row[c][0] is None else row[c][0] for row in table])
               for c in columns}
    print(f"{'median':<6}" + "".join(f"{medians[c]:>15g}" for c in columns))
    if medians["random"] == 0:
        verdict = "not measured: the start configuration alone meets the target"
    else:
        verdict = "ok" if 2 * medians["otf"] <= medians["random"] else "MISSED"
    print(f"target: on the fly at most half the calls of random: {verdict}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["pool", "otf", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategy", choices=["batch", "uncertainty", "coverage", "largest_error"],
                        default="batch",
                        help="selection rule in (a); largest_error is a yardstick that reads the "
                             "pool's labels (the configurations the current fit gets most wrong)")
    parser.add_argument("--n-sparse", type=int, default=200, help="SOAP sparse points in (a)")
    parser.add_argument("--score", choices=["forces", "forces_rms", "energy"], default="forces",
                        help="uncertainty score of a configuration in (a) (gapfit.active.select)")
    parser.add_argument("--optimize", action="store_true",
                        help="(a): the recipe optimises its sigmas and deltas by the marginal "
                             "likelihood at every size (both arms)")
    parser.add_argument("--system", choices=sorted(SYSTEMS), default="CuAgAu",
                        help="EMT system in (b)")
    parser.add_argument("--cell", choices=CELLS, default="vacancy", help="cell in (b)")
    parser.add_argument("--threshold", type=float, default=0.06,
                        help="uncertainty (eV/Å) above which (b) calls the oracle")
    parser.add_argument("--otf-score", choices=["forces", "forces_rms"], default="forces_rms",
                        help="uncertainty score of the MD frame in (b) (gapfit.active.uncertainty_score)")
    parser.add_argument("--check-every", type=int, default=25,
                        help="MD steps between uncertainty checks in (b)")
    parser.add_argument("--steps", type=int, default=150, help="MD steps per temperature in (b)")
    parser.add_argument("--reference", action="store_true",
                        help="(b) also adds the snapshot with the largest error first (needs every"
                             " snapshot's label: a reference, not a method)")
    args = parser.parse_args(argv)
    if args.part in ("pool", "both"):
        if MLEARN.is_dir():
            run_pool(args.seeds, args.strategy, args.n_sparse, args.score, args.optimize)
        else:
            print(f"(a) skipped: mlearn data not found at {MLEARN}")
    if args.part in ("otf", "both"):
        settings = {"threshold": args.threshold, "score": args.otf_score,
                    "check_every": args.check_every}
        run_otf(args.seeds, args.system, args.cell, settings, args.steps, args.reference)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
