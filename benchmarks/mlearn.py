"""Fit GAP recipes on the mlearn Mo and Si training sets; print test errors, fit time, peak memory.

    python benchmarks/mlearn.py                          # Mo and Si: gapfit.GAP(recipe="search") (recipe chosen
                                                         # from the data) and the fixed 0.1 recipe
    python benchmarks/mlearn.py --recipes acsf           # 2-body + ACSF with its default settings
    python benchmarks/mlearn.py --recipes soap_cosine    # SOAP with GAP's cosine cutoff weighting
    python benchmarks/mlearn.py --recipes soap,acsf --json mlearn.json
    python benchmarks/mlearn.py --elements Mo --recipes acsf --json mlearn.json
    python benchmarks/mlearn.py --save-dir models/       # also write the fitted models

Recipes: ``auto`` = ``gapfit.GAP(recipe="search")`` (terms=None: the recipe search of ``gapfit.model.recipe``
chooses the terms and the sigmas/deltas from the training data), ``soap`` = TwoBody() + SOAP()
(the fixed default of gapfit 0.1), ``soap_cosine`` = TwoBody() + SOAP(weighting="cosine"),
``acsf`` = TwoBody() + ACSF(), all settings default except n_sparse (``--n-sparse``, the
many-body term's sparse points; default 1000).

With ``--json FILE`` every fit's results are merged into FILE (keyed by element and recipe), and
the closing comparison table reads all rows in it, so the SOAP and ACSF rows may come from
separate runs (the issue asks for ACSF's test force MAE within 2× of SOAP's; that check needs
both rows of an element). Fit times from different runs are comparable only on an otherwise
idle machine; CPU time (all threads of the fitting process) is less sensitive to other load.

Data: ../shared/data/mlearn (Zuo et al., J. Phys. Chem. A 124, 731 (2020)). Each fit runs in
a fresh process so its peak RSS is its own.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory import measure_call  # noqa: E402

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
# targets of the defaults (test MAE: energy meV/atom, force meV/Å, stress GPa): the best of the
# published GAP and MTP per element (Zuo et al. 2020, ../shared/ANCHORS.md), stress 0.12 GPa
TARGETS = {"Mo": (2.24, 90.0, 0.12), "Si": (2.21, 60.0, 0.12)}
RECIPES = ("auto", "soap", "soap_cosine", "acsf")
# per config_type, the chosen recipe's errors may exceed the fixed recipe's by at most this
GROUP_WORSENING_LIMIT = 1.10
# the issue: ACSF's test force MAE within this factor of SOAP's
ACSF_FORCE_RATIO_LIMIT = 2.0


def build_model(descriptor, n_sparse, random_state=0):
    import gapfit
    if descriptor == "auto":
        return gapfit.GAP(random_state=random_state, recipe="search")
    if descriptor in ("soap", "soap_cosine"):
        weighting = "cosine" if descriptor == "soap_cosine" else "poly"
        return gapfit.GAP(terms=[gapfit.TwoBody(), gapfit.SOAP(n_sparse=n_sparse, weighting=weighting)],
                          random_state=random_state)
    if descriptor == "acsf":
        return gapfit.GAP(terms=[gapfit.TwoBody(), gapfit.ACSF(n_sparse=n_sparse)],
                          random_state=random_state)
    raise ValueError(f"unknown descriptor {descriptor!r}")


def fit_and_evaluate(element, descriptor, n_sparse, save_dir=None):
    """Runs in a child process: fit on train, evaluate on test, return the error dict and fit time."""
    import time
    import gapfit
    train = gapfit.io.read_mlearn(MLEARN / f"{element}_train.json")
    test = gapfit.io.read_mlearn(MLEARN / f"{element}_test.json")
    model = build_model(descriptor, n_sparse)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(train)
    fit_seconds = time.perf_counter() - start
    fit_cpu_seconds = time.process_time() - cpu_start
    if save_dir is not None:
        model.save(Path(save_dir) / f"{element}_{descriptor}.gap")
    recipe = model.recipe_.format_table() if hasattr(model, "recipe_") else None
    return {"fit_s": fit_seconds, "fit_cpu_s": fit_cpu_seconds,
            "test": gapfit.metrics.evaluate(model, test),
            "train": gapfit.metrics.evaluate(model, train), "recipe": recipe,
            "md_us_per_atom": (model.recipe_.final_md_us_per_atom if recipe else
                               model.md_microseconds_per_atom(train))}


def parse_recipes(text):
    """'soap,acsf' -> ['soap', 'acsf'], refusing unknown names."""
    recipes = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in recipes if name not in RECIPES]
    if unknown or not recipes:
        raise argparse.ArgumentTypeError(
            f"unknown recipe(s) {unknown or text!r}; choose from {', '.join(RECIPES)}")
    return recipes


def summary_row(result, n_sparse, wall, peak):
    """The figures the comparison table shows, in meV/atom, meV/Å, GPa, s, MB."""
    from gapfit.evaluate.errors import error_table
    overall = error_table(result["test"])[0]
    return {"energy_mae": overall[1], "energy_rmse": overall[2], "force_mae": overall[3],
            "force_rmse": overall[4], "stress_mae": overall[5], "stress_rmse": overall[6],
            "fit_s": result["fit_s"], "fit_cpu_s": result.get("fit_cpu_s"),
            "wall_s": wall, "peak_mb": peak, "n_sparse": n_sparse,
            "md_us_per_atom": result.get("md_us_per_atom"),
            "by_config_type": {group: (1e3 * stats["energy"]["mae"], 1e3 * stats["forces"]["mae"])
                               for group, stats in result["test"]["by_config_type"].items()}}


def merge_json(path, rows):
    """Merge {element: {recipe: row}} into the JSON file at ``path``; return the union."""
    stored = {}
    if path.is_file():
        stored = json.loads(path.read_text())
    for element, by_recipe in rows.items():
        stored.setdefault(element, {}).update(by_recipe)
    path.write_text(json.dumps(stored, indent=1, sort_keys=True))
    return stored


def print_comparison(rows):
    """One line per element and recipe, and ACSF's force MAE as a multiple of SOAP's."""
    print("\nrecipes compared (test MAE; fit wall and CPU time in s)")
    print(f"{'element':<8}{'recipe':<13}{'E meV/at':>9}{'F meV/Å':>9}{'S GPa':>7}"
          f"{'fit s':>8}{'CPU s':>8}{'peak MB':>9}{'F vs SOAP':>11}")
    verdicts = []
    for element in sorted(rows):
        by_recipe = rows[element]
        soap = by_recipe.get("soap")
        for recipe in RECIPES:
            row = by_recipe.get(recipe)
            if row is None:
                continue
            ratio = (row["force_mae"] / soap["force_mae"]) if soap else None
            cpu = row.get("fit_cpu_s")
            print(f"{element:<8}{recipe:<13}{row['energy_mae']:9.2f}{row['force_mae']:9.1f}"
                  f"{row['stress_mae']:7.3f}{row['fit_s']:8.0f}"
                  + (f"{cpu:8.0f}" if cpu is not None else f"{'':>8}")
                  + f"{row['peak_mb']:9.0f}"
                  + (f"{ratio:10.2f}×" if ratio is not None else f"{'':>11}"))
            if recipe == "acsf" and ratio is not None:
                verdicts.append((element, ratio))
    for element, ratio in verdicts:
        verdict = "ok" if ratio <= ACSF_FORCE_RATIO_LIMIT else "MISSED"
        print(f"target {element} ACSF force MAE <= {ACSF_FORCE_RATIO_LIMIT:g}× SOAP's: "
              f"{ratio:.2f}× {verdict}")


def compare_groups(rows):
    """Per config_type test MAEs of the chosen recipe against the fixed one (same run or JSON);
    the names of groups where the chosen recipe is worse by more than GROUP_WORSENING_LIMIT."""
    worse = []
    for element, by_recipe in sorted(rows.items()):
        auto, fixed = by_recipe.get("auto"), by_recipe.get("soap")
        if not (auto and fixed and auto.get("by_config_type") and fixed.get("by_config_type")):
            continue
        print(f"\n{element}: per config_type test MAE, chosen recipe / fixed recipe"
              " (E meV/atom, F meV/Å)")
        for group, (energy, force) in sorted(auto["by_config_type"].items()):
            fixed_energy, fixed_force = fixed["by_config_type"].get(group, (float("nan"),) * 2)
            ratios = (energy / fixed_energy, force / fixed_force)
            verdict = "ok" if max(ratios) <= GROUP_WORSENING_LIMIT else "WORSE"
            print(f"  {group:<12}{energy:7.2f} / {fixed_energy:6.2f}   {force:7.1f} / "
                  f"{fixed_force:6.1f}   {verdict}")
            if verdict != "ok":
                worse.append(f"{element} {group} worse than the fixed recipe")
    return worse


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", nargs="+", default=["Mo", "Si"])
    parser.add_argument("--recipes", type=parse_recipes, default=["auto", "soap"],
                        help="comma-separated: auto (gapfit.GAP(), recipe chosen from the data), "
                             "soap (TwoBody + SOAP), soap_cosine, acsf (TwoBody + ACSF)")
    parser.add_argument("--n-sparse", type=int, default=1000)
    parser.add_argument("--save-dir", default=None)
    parser.add_argument("--json", type=Path, default=None,
                        help="merge each fit's summary into this JSON file and compare all its rows")
    args = parser.parse_args(argv)
    if not MLEARN.is_dir():
        print(f"skipped: mlearn data not found at {MLEARN}")
        return 0
    from gapfit.evaluate.errors import error_table
    header = (f"{'set':<16}{'E MAE':>8}{'E RMSE':>8}{'F MAE':>8}{'F RMSE':>8}{'S MAE':>7}{'S RMSE':>7}")
    failures = []
    summaries = {}
    for element, descriptor in ((e, r) for e in args.elements for r in args.recipes):
        result, wall, peak = measure_call(fit_and_evaluate, element, descriptor, args.n_sparse,
                                          args.save_dir)
        summaries.setdefault(element, {})[descriptor] = summary_row(result, args.n_sparse, wall,
                                                                    peak)
        print(f"\n{element} ({descriptor}, n_sparse={args.n_sparse}): fit {result['fit_s']:.1f} s"
              f" (CPU {result['fit_cpu_s']:.0f} s), fit+evaluate wall {wall:.1f} s,"
              f" peak RSS {peak:.0f} MB")
        print("units: meV/atom, meV/Å, GPa (test set unless marked train)")
        print(header)
        for row in error_table(result["test"]) + [("train",) + error_table(result["train"])[0][1:]]:
            print(f"{row[0]:<16}" + "".join(f"{v:8.2f}" if i < 4 else f"{v:7.3f}"
                                             for i, v in enumerate(row[1:])))
        if result.get("recipe"):
            print(result["recipe"])
        else:
            print(f"MD cost: {result['md_us_per_atom']:.0f} µs/atom per energy+forces+stress call")
        overall = error_table(result["test"])[0]
        target = TARGETS.get(element)
        if target and descriptor == "auto":
            checks = [("energy MAE", overall[1], target[0]), ("force MAE", overall[3], target[1]),
                      ("stress MAE", overall[5], target[2])]
            for name, value, limit in checks:
                if limit is not None:
                    verdict = "ok" if value <= limit else "MISSED"
                    print(f"target {name} <= {limit}: {value:.3f} {verdict}")
                    if value > limit:
                        failures.append(f"{element} {name}")
    if args.json is not None:
        summaries = merge_json(args.json, summaries)
    print_comparison(summaries)
    failures += compare_groups(summaries)
    if failures:
        print("\nmissed targets: " + ", ".join(failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
