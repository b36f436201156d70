"""Descriptor choices on multi-species data: test errors, fit time and MD speed, same data, same run.

    python benchmarks/multispecies.py                        # data/cuau and data/cuagau, all recipes
    python benchmarks/multispecies.py --sets cuau --recipes twobody,acsf
    python benchmarks/multispecies.py --sets /path/to/NiMo   # NiMo_train.xyz, NiMo_test.xyz
    python benchmarks/multispecies.py --json multispecies.json --markdown table.md

Recipes (every setting default except the many-body term's ``--n-sparse``):

- ``twobody``: TwoBody() alone (pair potential; 20 sparse distances per species pair);
- ``soap``: TwoBody() + SOAP() (n_max 8, l_max 6, r_cut 5 Å, zeta 4), the default recipe;
- ``acsf``: TwoBody() + ACSF() (r_cut 5 Å, the default G2/G4/G5 grid, standardised features).

A set is ``NAME`` (``data/NAME_train.xyz`` and ``data/NAME_test.xyz``) or a path prefix
``DIR/NAME`` with the same two files (extended XYZ with energy, forces, stress). gapfit's own
sets are EMT-labelled fcc alloys (``data/README.md``): they test that a recipe handles several
species, not how it fares on DFT. ``../shared/data/`` holds no multi-element set yet (only
mlearn Mo and Si); when one arrives, pass its prefix with ``--sets``.

Fit time is the wall time of ``GAP.fit`` after every descriptor's numba code has been compiled
(a small warm-up fit per recipe, untimed), and its CPU time (all threads of this process). MD
speed is the wall time per atom of one energy + forces call of ``GAPCalculator`` on a rattled
~500-atom fcc cell with the set's species in equal parts and its mean volume per atom, after a
random move of every atom by ``--displacement`` Å (as in MD; the calculator reuses its neighbour
list within a skin of 0.5 Å). The row ``mean`` is the baseline of knowing nothing: the training
mean energy per atom, zero forces, zero stress.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
RECIPES = ("twobody", "soap", "acsf")
RECIPE_LABELS = {"mean": "mean (baseline)", "twobody": "2-body", "soap": "2-body + SOAP",
                 "acsf": "2-body + ACSF"}


def build_model(recipe, n_sparse, random_state=0):
    import gapfit
    if recipe == "twobody":
        terms = [gapfit.TwoBody()]
    elif recipe == "soap":
        terms = [gapfit.TwoBody(), gapfit.SOAP(n_sparse=n_sparse)]
    elif recipe == "acsf":
        terms = [gapfit.TwoBody(), gapfit.ACSF(n_sparse=n_sparse)]
    else:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    return gapfit.GAP(terms=terms, random_state=random_state)


def parse_list(choices):
    def parse(text):
        items = [item.strip().lower() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in choices]
        if unknown or not items:
            raise argparse.ArgumentTypeError(
                f"unknown {unknown or text!r}; choose from {', '.join(choices)}")
        return items
    return parse


def set_files(name):
    """(train, test) paths of a set given by name (in data/) or path prefix."""
    prefix = Path(name) if ("/" in name or name.startswith(".")) else DATA / name
    train = prefix.parent / f"{prefix.name}_train.xyz"
    test = prefix.parent / f"{prefix.name}_test.xyz"
    for path in (train, test):
        if not path.is_file():
            raise FileNotFoundError(f"set {name!r}: {path} not found")
    return train, test


def species_label(structures):
    from ase.data import chemical_symbols
    numbers = sorted(set(np.concatenate([atoms.numbers for atoms in structures]).tolist()))
    return "".join(chemical_symbols[z] for z in numbers), numbers


def baseline_errors(train, test):
    """Test MAEs (meV/atom, meV/Å, GPa) of the mean energy per atom, zero forces and stress."""
    from ase.units import GPa
    mean = np.mean([atoms.get_potential_energy() / len(atoms) for atoms in train])
    energy = np.mean([abs(atoms.get_potential_energy() / len(atoms) - mean) for atoms in test])
    forces = np.mean(np.abs(np.concatenate([atoms.get_forces().ravel() for atoms in test])))
    stress = np.mean(np.abs(np.concatenate([atoms.get_stress() for atoms in test])))
    return {"energy_mae": 1e3 * energy, "force_mae": 1e3 * forces, "stress_mae": stress / GPa}


def md_cell(structures, n_atoms, seed=0):
    """A rattled fcc cell of about n_atoms atoms, the set's species in equal parts at random
    sites, lattice constant from the set's mean volume per atom."""
    from ase.build import bulk
    _, numbers = species_label(structures)
    volume = np.mean([atoms.get_volume() / len(atoms) for atoms in structures])
    repeat = max(1, round((n_atoms / 4) ** (1 / 3)))
    atoms = bulk("Cu", "fcc", a=(4 * volume) ** (1 / 3), cubic=True).repeat(repeat)
    rng = np.random.default_rng(seed)
    atoms.numbers = rng.permutation(np.resize(numbers, len(atoms)))
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def md_speed(model, atoms, n_calls, displacement, seed=0):
    """Wall and CPU µs per atom of one energy + forces call, after one warm-up call."""
    import gapfit
    atoms = atoms.copy()
    atoms.calc = gapfit.GAPCalculator(model)
    atoms.get_forces()
    rng = np.random.default_rng(seed)
    wall = cpu = 0.0
    for _ in range(n_calls):
        atoms.positions = atoms.positions + rng.normal(scale=displacement, size=atoms.positions.shape)
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        atoms.get_potential_energy()
        atoms.get_forces()
        wall += time.perf_counter() - wall_start
        cpu += time.process_time() - cpu_start
    scale = 1e6 / n_calls / len(atoms)
    return wall * scale, cpu * scale


def run_recipe(recipe, train, test, args):
    """Fit, evaluate and time one recipe; the summary dict."""
    import gapfit
    from gapfit.evaluate.errors import error_table
    build_model(recipe, min(args.n_sparse, 20)).fit(train[:3])  # compile numba code, untimed
    model = build_model(recipe, args.n_sparse)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(train)
    fit_s, fit_cpu_s = time.perf_counter() - wall_start, time.process_time() - cpu_start
    errors = gapfit.metrics.evaluate(model, test)
    overall = error_table(errors)[0]
    md_wall, md_cpu = md_speed(model, md_cell(train, args.md_atoms), args.md_calls,
                               args.displacement)
    return {"energy_mae": overall[1], "force_mae": overall[3], "stress_mae": overall[5],
            "energy_rmse": overall[2], "force_rmse": overall[4], "stress_rmse": overall[6],
            "fit_s": fit_s, "fit_cpu_s": fit_cpu_s, "md_us_per_atom": md_wall,
            "md_cpu_us_per_atom": md_cpu, "n_sparse": int(model.alpha_.shape[0]),
            "by_config_type": {row[0]: {"energy_mae": row[1], "force_mae": row[3]}
                               for row in error_table(errors)[1:]}}


def markdown_table(results, md_atoms):
    """The README table: one row per set and recipe."""
    lines = ["| data | descriptors | E MAE (meV/atom) | F MAE (meV/Å) | S MAE (GPa) "
             f"| fit, s: wall (CPU) | MD, µs/atom/call, {md_atoms} atoms: wall (CPU) |",
             "|---|---|---|---|---|---|---|"]
    for name, entry in results.items():
        data = f"{entry['species']} ({entry['n_train']} train / {entry['n_test']} test)"
        for recipe, row in entry["rows"].items():
            fit = f"{row['fit_s']:.0f} ({row['fit_cpu_s']:.0f})" if "fit_s" in row else "–"
            speed = (f"{row['md_us_per_atom']:.0f} ({row['md_cpu_us_per_atom']:.0f})"
                     if "md_us_per_atom" in row else "–")
            lines.append(f"| {data} | {RECIPE_LABELS[recipe]} | {row['energy_mae']:.2f} "
                         f"| {row['force_mae']:.1f} | {row['stress_mae']:.3f} | {fit} | {speed} |")
            data = ""
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["cuau", "cuagau"],
                        help="set names in data/ or path prefixes DIR/NAME")
    parser.add_argument("--recipes", type=parse_list(RECIPES), default=list(RECIPES),
                        help="comma-separated: twobody, soap, acsf")
    parser.add_argument("--n-sparse", type=int, default=500,
                        help="sparse points of the many-body term (SOAP or ACSF), over all species")
    parser.add_argument("--md-atoms", type=int, default=500, help="size of the MD-speed cell")
    parser.add_argument("--md-calls", type=int, default=5)
    parser.add_argument("--displacement", type=float, default=0.002,
                        help="Å, random move of every atom before each timed call")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here")
    args = parser.parse_args(argv)

    import gapfit
    results = {}
    for name in args.sets:
        train_path, test_path = set_files(name)
        train, test = gapfit.io.read(train_path), gapfit.io.read(test_path)
        label, _ = species_label(train + test)
        entry = results[name] = {"species": label, "n_train": len(train), "n_test": len(test),
                                 "train_atoms": int(sum(map(len, train))),
                                 "rows": {"mean": baseline_errors(train, test)}}
        print(f"\n{name}: {label}, {len(train)} training configurations "
              f"({entry['train_atoms']} atoms), {len(test)} test", flush=True)
        for recipe in args.recipes:
            row = entry["rows"][recipe] = run_recipe(recipe, train, test, args)
            print(f"  {RECIPE_LABELS[recipe]:<15} E {row['energy_mae']:6.2f} meV/atom  "
                  f"F {row['force_mae']:6.1f} meV/Å  S {row['stress_mae']:.3f} GPa  "
                  f"fit {row['fit_s']:5.1f} s (CPU {row['fit_cpu_s']:.0f} s)  "
                  f"MD {row['md_us_per_atom']:.0f} µs/atom (CPU {row['md_cpu_us_per_atom']:.0f})",
                  flush=True)
            for group, errors in row["by_config_type"].items():
                print(f"      {group:<12} E {errors['energy_mae']:6.2f}  F {errors['force_mae']:6.1f}")
    table = markdown_table(results, args.md_atoms)
    print("\n" + table)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    if args.markdown is not None:
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
