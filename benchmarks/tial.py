"""A multi-element DFT set: Ti–Al, the default fit against a hand-set recipe and the recipe search.

    python benchmarks/tial.py                   # seed 0, 90/10 split by configuration
    python benchmarks/tial.py --seed 1 --no-search

Data: ``../shared/data/tial/TiAl_tutorial.xyz`` (329 periodic Ti–Al cells with DFT energies,
forces and virials, from ACEpotentials.jl's tutorial; its README): 315 two-atom cells under random
deformations (``FLD_TiAl``) and 14 cells of 54 and 128 atoms from very hot MD (``TiAl_T5000``).
Split: a seeded permutation of the configurations, every config_type split 90/10 on its own (so the
14 hot cells give test cells too). Energies are absolute DFT energies, so e0 matters: every fit
uses ``e0="average"`` (gapfit's default).

Rows (test MAE: energy meV/atom, force meV/Å, stress GPa; fit wall time; per config_type):
  default   ``gapfit.GAP()``: TwoBody() + SOAP() with gapfit's defaults, both species channels;
  hand-set  what a GAP user would write for a binary alloy: 2-body + SOAP with gap_fit's cosine
            cutoff weighting (1 Å transition), cutoff 5.5 Å, sigmas 0.001 eV/atom / 0.05 eV/Å /
            0.05 eV/atom, 1,000 sparse points;
  search    ``gapfit.GAP(recipe="search")`` (the recipe chosen from the training data).

Measured 2026-12-02, seed 0 (296 train / 33 test configurations, 2 cores at load ~1):

    recipe      E meV/atom   F meV/Å   S GPa   fit s   per config_type E / F
    default           1.23     107.5   0.176      20   FLD_TiAl 1.03 / 10  TiAl_T5000 7.59 / 223
    hand-set          2.07     175.4   0.273      20   FLD_TiAl 1.69 / 17  TiAl_T5000 14.14 / 364
    search            1.11      99.6   0.176     212   FLD_TiAl 0.91 / 9   TiAl_T5000 7.69 / 207

The default is better than the hand-set recipe on every error; the search (it chose poly 4.82 Å
with 1,500 sparse points by CV) took 10.6x the default fit, over the issue's 6x budget (the CV
screen is the whole training set here: every group is small).

Since 2026-12-07 the search's fold fits are bounded by default (``search_time="auto"``: 4 default
fits' work counted from atom counts, ``gapfit.model.recipe.fit_work``). Measured that day, seed 0,
one thread:

    recipe      E meV/atom   F meV/Å   S GPa   fit s   per config_type E / F
    default           1.23     107.5   0.176      13   FLD_TiAl 1.03 / 10  TiAl_T5000 7.59 / 223
    hand-set          2.07     175.4   0.273      14   FLD_TiAl 1.69 / 17  TiAl_T5000 14.14 / 364
    search            1.21     112.2   0.110      46   FLD_TiAl 0.75 / 8  TiAl_T5000 15.80 / 235

The search screened the reference and poly 4.82 Å (3.1 default fits' work; the next term set
would have brought it to 4.3), chose the same recipe as the unbounded search (poly 4.82 Å, 1,500
sparse points, virial sigma × 0.3) in 3.5x the default fit. Its energies are the best of the
three, its stresses far better (0.110 GPa), its forces 4 % worse than the default's and its hot
cells' energies twice the default's: the per-group rule of issue 16 does not hold here either.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

TIAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "tial" / "TiAl_tutorial.xyz"


def split(structures, seed, test_fraction=0.1):
    """(train, test): every config_type permuted with ``seed`` and split on its own."""
    rng = np.random.default_rng(seed)
    groups = {}
    for index, atoms in enumerate(structures):
        groups.setdefault(atoms.info.get("config_type", "default"), []).append(index)
    train, test = [], []
    for name in sorted(groups):
        members = rng.permutation(groups[name])
        n_test = max(1, int(round(test_fraction * len(members))))
        test += [structures[i] for i in members[:n_test]]
        train += [structures[i] for i in members[n_test:]]
    return train, test


def models(include_search, seed):
    import gapfit
    recipes = {
        "default": gapfit.GAP(random_state=seed),
        "hand-set": gapfit.GAP(terms=[gapfit.TwoBody(cutoff=5.5),
                                      gapfit.SOAP(r_cut=5.5, weighting="cosine", transition_width=1.0,
                                                  n_sparse=1000)],
                               energy_sigma=0.001, force_sigma=0.05, virial_sigma=0.05,
                               random_state=seed),
    }
    if include_search:
        recipes["search"] = gapfit.GAP(recipe="search", random_state=seed)
    return recipes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=TIAL)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-search", action="store_true", help="skip the recipe-search row")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"skipped: {args.data} not found (the Ti–Al data live in ../shared/data/tial)")
        return 0
    import gapfit
    structures = gapfit.io.read(args.data, forces_key="force", virial_key="virial",
                                energy_key="energy")
    train, test = split(structures, args.seed)
    print(f"{args.data.name}: {len(structures)} configurations; seed {args.seed}: "
          f"{len(train)} train / {len(test)} test ({sum(map(len, test))} test atoms)")
    rows = {}
    for name, model in models(not args.no_search, args.seed).items():
        start = time.perf_counter()
        model.fit(train)
        seconds = time.perf_counter() - start
        rows[name] = (gapfit.metrics.evaluate(model, test), seconds)
        print(f"fitted {name} in {seconds:.0f} s", flush=True)
        if hasattr(model, "recipe_"):
            print(model.recipe_.format_table())

    print(f"\n{'recipe':<10}{'E meV/atom':>12}{'F meV/Å':>10}{'S GPa':>8}{'fit s':>8}   per config_type E / F")
    maes = {}
    for name, (result, seconds) in rows.items():
        # error_table rows: (label, E MAE, E RMSE, F MAE, F RMSE, S MAE, S RMSE); "all" first
        overall, *groups = gapfit.metrics.error_table(result)
        maes[name] = overall[1::2][:3]
        energy, force, stress = maes[name]
        per_group = "  ".join(f"{row[0]} {row[1]:.2f} / {row[3]:.0f}"
                              for row in sorted(groups))
        print(f"{name:<10}{energy:>12.2f}{force:>10.1f}{stress:>8.3f}{seconds:>8.0f}   {per_group}")
    verdict = all(d <= h for d, h in zip(maes["default"], maes["hand-set"]))
    print(f"default at least as good as the hand-set recipe on E, F and S: {'yes' if verdict else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
