"""Research (issue 16, helper multiscale): multi-scale SOAP — a short, narrow SOAP term beside the
usual long one in the same model — fitted to a FULL mlearn training set; test E/F/S MAE overall
and per config_type, fit CPU time, peak RSS, MD cost against the fixed default
(``gapfit.GAP(random_state=0)``) timed interleaved in one process, and 3-fold CV (by
configuration, i::3) on the training set. Test set used for measuring only.

    python experiments/multiscale_soap.py fit Mo default L1500 L1500+S3.6     # one process per fit
    python experiments/multiscale_soap.py md Mo default L1500 L1500+S3.6      # saved models, interleaved
    python experiments/multiscale_soap.py cv Mo L1500 L1500+S3.6              # 3-fold CV, one process each
    python experiments/multiscale_soap.py resolve Mo L1500+S3.6               # saved models, σ_V × 0.3 etc.

Variant names, "+"-separated tokens:
    default          the fixed default recipe, gapfit.GAP(random_state=0) (alone)
    L<n>             TwoBody(cutoff=r_long) + SOAP(r_cut=r_long, cosine, transition_width 1.0,
                     n_sparse n), r_long = 5.0 Å (Mo) / 4.72 Å (Si); la<x> its atom width (Å)
    S<r>             add a short SOAP term with r_cut r Å (cosine); its settings, defaults in
                     brackets: sw<x> atom width [0.3], sn<n> n_max [6], sl<l> l_max [4],
                     sns<n> n_sparse [400], sd<x> delta eV [0.2], stw<x> transition width [0.5]
Fitted models go to /tmp/h17/models/<el>_<name>.gap, result lines (JSON) to /tmp/h17/runs.jsonl.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import gapfit
from gapfit.evaluate.errors import ParityData, Series, error_table, parity_data, parity_statistics
from gapfit.predict.predictor import StructurePredictor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from structural import interleaved_md_times, md_cell  # noqa: E402

MLEARN = Path("/work/shared/data/mlearn")
STORE = Path("/tmp/h17")
R_LONG = {"Mo": 5.0, "Si": 4.72}
GROUPS = ("AIMD-NVT", "Elastic", "Surface", "Vacancy")


def make_model(element, name):
    if name == "default":
        return gapfit.GAP(random_state=0)
    r_long = R_LONG[element]
    long_kw = dict(r_cut=r_long, weighting="cosine", transition_width=1.0, n_sparse=1500)
    short_kw = None
    for token in name.split("+"):
        if token.startswith("la"):
            long_kw["sigma"] = float(token[2:])
        elif token.startswith("L"):
            long_kw["n_sparse"] = int(token[1:])
        elif token.startswith("S"):
            short_kw = dict(r_cut=float(token[1:]), weighting="cosine", transition_width=0.5,
                            sigma=0.3, n_max=6, l_max=4, n_sparse=400, delta=0.2)
        elif token.startswith("sns"):
            short_kw["n_sparse"] = int(token[3:])
        elif token.startswith("stw"):
            short_kw["transition_width"] = float(token[3:])
        elif token.startswith("sw"):
            short_kw["sigma"] = float(token[2:])
        elif token.startswith("sn"):
            short_kw["n_max"] = int(token[2:])
        elif token.startswith("sl"):
            short_kw["l_max"] = int(token[2:])
        elif token.startswith("sd"):
            short_kw["delta"] = float(token[2:])
        else:
            raise ValueError(f"unknown token {token!r} in {name!r}")
    terms = [gapfit.TwoBody(cutoff=r_long), gapfit.SOAP(**long_kw)]
    if short_kw is not None:
        terms.append(gapfit.SOAP(**short_kw))
    return gapfit.GAP(terms=terms, random_state=0)


def model_path(element, name):
    return STORE / "models" / f"{element}_{name}.gap"


def summary(statistics):
    """{"all": [E, F, S], group: [E, F, S]} in meV/atom, meV/Å, GPa (MAE)."""
    rows = error_table({**statistics["all"], "by_config_type": statistics["by_config_type"]})
    return {r[0]: [round(r[1], 3), round(r[3], 2), round(r[5], 4)] for r in rows}


def line(label, errors):
    groups = "  ".join(f"{g} {errors[g][0]:.2f}/{errors[g][1]:.1f}/{errors[g][2]:.3f}"
                       for g in GROUPS if g in errors)
    a = errors["all"]
    return f"{label:40s} {a[0]:5.2f} / {a[1]:5.1f} / {a[2]:.3f}   {groups}"


def record(entry):
    STORE.mkdir(parents=True, exist_ok=True)
    with open(STORE / "runs.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


def fit_one(element, name):
    train = gapfit.io.read_mlearn(MLEARN / f"{element}_train.json")
    test = gapfit.io.read_mlearn(MLEARN / f"{element}_test.json")
    model = make_model(element, name)
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(train)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    (STORE / "models").mkdir(parents=True, exist_ok=True)
    model.save(model_path(element, name))
    errors = summary(parity_statistics(parity_data(model, test)))
    entry = {"kind": "test", "element": element, "name": name,
             "time": time.strftime("%H:%M", time.gmtime()), "fit_cpu_s": round(cpu, 1),
             "fit_wall_s": round(wall, 1), "peak_mb": round(model.peak_memory_mb_),
             "load": round(os.getloadavg()[0], 2),
             "n_sparse": [int(t.n_sparse_points) for t in model.terms_],
             "deltas": [round(float(t.delta_), 4) for t in model.terms_], "errors": errors}
    record(entry)
    print(line(name, errors), f"| fit CPU {cpu:.0f} s, peak {model.peak_memory_mb_:.0f} MB",
          flush=True)


def cv_one(element, name, folds=3):
    train = gapfit.io.read_mlearn(MLEARN / f"{element}_train.json")
    pieces, cpu = [], time.process_time()
    for k in range(folds):
        held = train[k::folds]
        fitted = [a for i, a in enumerate(train) if i % folds != k]
        pieces.append(parity_data(make_model(element, name).fit(fitted), held))
    cpu = time.process_time() - cpu

    def joined(quantity):
        parts = [getattr(p, quantity) for p in pieces]
        return Series(np.concatenate([s.reference for s in parts]),
                      np.concatenate([s.predicted for s in parts]),
                      np.concatenate([s.config_types for s in parts]))
    data = ParityData(joined("energy"), joined("forces"), joined("stress"), len(train),
                      sorted(set().union(*(p.config_types for p in pieces))))
    errors = summary(parity_statistics(data))
    record({"kind": "cv", "element": element, "name": name, "cpu_s": round(cpu, 1),
            "errors": errors})
    print(line(f"CV {name}", errors), f"| {folds} fold fits {cpu:.0f} s CPU", flush=True)


def md_cost(element, names, rounds=15):
    """µs/atom per energy+forces+stress call, the saved models timed interleaved (median over
    rounds of the best of 3), each relative to the default's."""
    cell = md_cell(element)
    cell.rattle(0.05, seed=1)
    names = ["default"] + [n for n in names if n != "default"]
    predictors = {n: StructurePredictor.from_model(gapfit.load(model_path(element, n))) for n in names}
    times = interleaved_md_times(predictors, cell, rounds)
    reference = np.median(times["default"])
    print(f"{element}: {len(cell)}-atom cell, one thread, load {os.getloadavg()[0]:.1f}")
    for n in names:
        value = np.median(times[n])
        ratio_best = min(times[n]) / min(times["default"])
        print(f"| {n} | {value:.0f} | {value / reference:.2f} ({ratio_best:.2f}) |", flush=True)
        record({"kind": "md", "element": element, "name": n, "us_per_atom": round(value, 1),
                "ratio": round(value / reference, 3), "ratio_best": round(ratio_best, 3)})


def resolve(element, names, scales=({"virial": 0.3}, {"forces": 0.6, "virial": 0.3})):
    """Test errors of saved models re-solved with sigma scales (``GAP.with_sigma_scales``,
    no refit), as the search's sigma option does."""
    test = gapfit.io.read_mlearn(MLEARN / f"{element}_test.json")
    for name in names:
        model = gapfit.load(model_path(element, name))
        for scale in scales:
            errors = summary(parity_statistics(parity_data(model.with_sigma_scales(scale), test)))
            label = name + " " + ",".join(f"{k[0]}{v:g}" for k, v in scale.items())
            record({"kind": "resolve", "element": element, "name": name, "scales": scale,
                    "errors": errors})
            print(line(label, errors), flush=True)


DEFAULT_GROUPS = {"Mo": {"AIMD-NVT": (2.78, 134.3), "Elastic": (0.75, 10.5), "Surface": (4.60, 75.9),
                          "Vacancy": (2.77, 129.1)},
                  "Si": {"AIMD-NVT": (3.22, 87.1), "Elastic": (0.51, 2.6), "Surface": (7.14, 154.5),
                         "Vacancy": (2.59, 100.6)}}


def table(element, names):
    """Markdown rows from /tmp/h17/runs.jsonl: the latest test, CV and re-solve records per name,
    the MD ratio (median of rounds, against the default): median (range, count) over all timings."""
    runs = [json.loads(text) for text in open(STORE / "runs.jsonl")]
    runs = [r for r in runs if r["element"] == element]

    def groups(errors):
        return " | ".join(f"{errors[g][0]:.2f}/{errors[g][1]:.1f}" for g in GROUPS)

    def worst(errors):
        ratios = [(errors[g][i] / DEFAULT_GROUPS[element][g][i], f"{g} {'EF'[i]}")
                  for g in GROUPS for i in (0, 1)]
        value, where = max(ratios)
        return f"{value:.2f} ({where})"

    print("| variant | test E / F / S | AIMD-NVT | Elastic | Surface | Vacancy | worst group ratio "
          "| fit CPU s | peak MB | MD ratio | CV E / F / S |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        test = [r for r in runs if r["kind"] == "test" and r["name"] == name][-1]
        md = [r["ratio"] for r in runs if r["kind"] == "md" and r["name"] == name]
        cv = [r for r in runs if r["kind"] == "cv" and r["name"] == name]
        e = test["errors"]
        cv_text = "{:.2f} / {:.1f} / {:.3f}".format(*cv[-1]["errors"]["all"]) if cv else ""
        print(f"| {name} | {e['all'][0]:.2f} / {e['all'][1]:.1f} / {e['all'][2]:.3f} | {groups(e)} "
              f"| {worst(e)} | {test['fit_cpu_s']:.0f} | {test['peak_mb']} "
              f"| {np.median(md):.2f} ({min(md):.2f}–{max(md):.2f}, {len(md)}) | {cv_text} |")
        for r in runs:
            if r["kind"] == "resolve" and r["name"] == name:
                e = r["errors"]
                label = ", ".join(f"σ_{k[0].upper()} × {v:g}" for k, v in r["scales"].items())
                print(f"| … {label} | {e['all'][0]:.2f} / {e['all'][1]:.1f} / {e['all'][2]:.3f} "
                      f"| {groups(e)} | {worst(e)} | | | | |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["fit", "md", "cv", "fit-one", "cv-one", "resolve", "table"])
    parser.add_argument("element", choices=sorted(R_LONG))
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    if args.action in ("fit", "cv"):   # one fresh process per variant: its own peak RSS
        for name in args.names:
            subprocess.run([sys.executable, __file__, args.action + "-one", args.element, name],
                           check=True)
    elif args.action == "fit-one":
        fit_one(args.element, args.names[0])
    elif args.action == "cv-one":
        cv_one(args.element, args.names[0])
    elif args.action == "table":
        table(args.element, args.names)
    elif args.action == "resolve":
        resolve(args.element, args.names)
    else:
        md_cost(args.element, args.names)


if __name__ == "__main__":
    main()
