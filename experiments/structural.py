"""Research (issue 16): fit one structural candidate recipe on a FULL mlearn training set,
print/append its test MAEs (all and per config_type), fit time and MD µs/atom next to the
default recipe's MD cost measured in the same process.

    python experiments/structural.py Mo cos_l8 --out docs/recipe2_runs.jsonl

The default recipe's model for the MD comparison is read from /tmp/recipe2/<el>_default.gap
(written by the 'default' candidate run). Test set used for the reported figures only.
"""
import argparse
import logging
import json
import os
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

import gapfit
from gapfit.evaluate.errors import error_table
from gapfit.predict.predictor import StructurePredictor

MLEARN = Path("/work/shared/data/mlearn")
STORE = Path("/tmp/recipe2")


def cos_soap(**kw):
    s = dict(weighting="cosine", transition_width=1.0)
    s.update(kw)
    return gapfit.SOAP(**s)


def terms_of(name):
    """name -> (terms, extra GAP kwargs)."""
    parts = name.split("+")
    base, mods = parts[0], parts[1:]
    soap_kw, gap_kw, two_body = {}, {}, True
    for m in mods:
        if m.startswith("l"):
            soap_kw["l_max"] = int(m[1:])
        elif m.startswith("n") and m[1:].isdigit():
            soap_kw["n_max"] = int(m[1:])
        elif m.startswith("ns"):
            soap_kw["n_sparse"] = int(m[2:])
        elif m.startswith("z"):
            soap_kw["zeta"] = int(m[1:])
        elif m.startswith("rc"):
            soap_kw["r_cut"] = float(m[2:])
        elif m.startswith("bal"):   # per-config_type sigmas x (n_group / n_largest)^p, p = bal value
            gap_kw["balance"] = float(m[3:])
        elif m == "no2b":
            two_body = False
        elif m.startswith("sg"):   # SOAP atom width (Å)
            soap_kw["sigma"] = float(m[2:])
        elif m.startswith("sf"):
            gap_kw["force_sigma"] = 0.05 * float(m[2:])
        elif m.startswith("sv"):
            gap_kw["virial_sigma"] = 0.05 * float(m[2:])
        elif m.startswith("se"):
            gap_kw["energy_sigma"] = 0.002 * float(m[2:])
        elif m.startswith("ct"):   # per-config_type: ctSurface:E,F,V  factors on the defaults
            group, factors = m[2:].split(":")
            fe, ff, fv = (float(x) for x in factors.split(","))
            gap_kw.setdefault("config_type_sigma", {})[group] = None, (fe, ff, fv)
        else:
            raise ValueError(m)
    if base == "default":
        soap = gapfit.SOAP(**soap_kw)
    elif base == "cos":
        soap = cos_soap(**soap_kw)
    elif base == "quip":
        q = dict(cutoff=soap_kw.pop("r_cut", 5.0), cutoff_transition_width=1.0, delta=0.5,
                 atom_sigma=0.5)
        q.update(soap_kw)
        soap = gapfit.QuipSOAP(**q)
    else:
        raise ValueError(base)
    # like the search's candidates, rc sets the 2-body cutoff too
    terms = ([gapfit.TwoBody(cutoff=soap_kw.get("r_cut", 5.0))] if two_body else []) + [soap]
    return terms, gap_kw


def md_cell(element):
    if element == "Mo":
        return bulk("Mo", "bcc", a=3.16, cubic=True).repeat(4)        # 128 atoms
    return bulk("Si", "diamond", a=5.47, cubic=True).repeat(3)         # 216 atoms


def interleaved_md_times(predictors, atoms, rounds=5):
    """{name: [µs/atom per round]}: each round times every predictor in turn (best of 3
    energy+forces+stress calls on ``atoms``), so that load changes hit all alike."""
    for predictor in predictors.values():
        predictor.predict(atoms)
    times = {name: [] for name in predictors}
    for _ in range(rounds):
        for name, predictor in predictors.items():
            best = np.inf
            for _ in range(3):
                began = time.perf_counter()
                predictor.predict(atoms)
                best = min(best, time.perf_counter() - began)
            times[name].append(1e6 * best / len(atoms))
    return times


def md_time(model, atoms, repeats=5):
    predictor = StructurePredictor.from_model(model)
    predictor.predict(atoms)
    best = np.inf
    for _ in range(repeats):
        began = time.perf_counter()
        predictor.predict(atoms)
        best = min(best, time.perf_counter() - began)
    return 1e6 * best / len(atoms)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("element")
    p.add_argument("candidate")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "recipe2_runs.jsonl"))
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("gapfit").setLevel(logging.INFO)
    train = gapfit.io.read_mlearn(MLEARN / f"{a.element}_train.json")
    test = gapfit.io.read_mlearn(MLEARN / f"{a.element}_test.json")
    if a.candidate.startswith("search"):
        terms, gap_kw = None, {"recipe": "search"}
        for m in a.candidate.split("+")[1:]:
            if m.startswith("budget"):
                gap_kw["search_time"] = float(m[6:])
    else:
        terms, gap_kw = terms_of(a.candidate)
    cts = gap_kw.pop("config_type_sigma", None)
    power = gap_kw.pop("balance", None)
    if power is not None:
        import collections
        counts = collections.Counter(str(x.info.get("config_type")) for x in train)
        largest = max(counts.values())
        cts = {g: (None, (f, f, f)) for g, n in counts.items()
               for f in [max(0.3, (n / largest) ** power)] if f < 1}
    if cts:
        base = (gap_kw.get("energy_sigma", 0.002), gap_kw.get("force_sigma", 0.05),
                gap_kw.get("virial_sigma", 0.05))
        gap_kw["config_type_sigma"] = {g: tuple(b * f for b, f in zip(base, fac))
                                       for g, (_, fac) in cts.items()}
    model = gapfit.GAP(terms=terms, random_state=0, **gap_kw)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(train)
    fit_s, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
    result = gapfit.metrics.evaluate(model, test)
    rows = error_table(result)
    cell = md_cell(a.element)
    cell.rattle(0.05, seed=1)
    ref_path = STORE / f"{a.element}_default.gap"
    if a.candidate == "default":
        model.save(ref_path)
    ref = gapfit.load(ref_path)
    md_ref1 = md_time(ref, cell)
    md = md_time(model, cell)
    md_ref2 = md_time(ref, cell)
    md_ref = min(md_ref1, md_ref2)
    load = os.getloadavg()[0]
    record = {"element": a.element, "candidate": a.candidate,
              "time": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "fit_s": round(fit_s, 1), "fit_cpu_s": round(fit_cpu, 1), "load": round(load, 2),
              "peak_mb": round(model.peak_memory_mb_),
              "md_us": round(md, 1), "md_default_us": round(md_ref, 1),
              "md_ratio": round(md / md_ref, 3),
              "test": {r[0]: [round(r[1], 3), round(r[3], 2), round(r[5], 4)] for r in rows},
              "n_sparse_total": int(sum(len(getattr(t, "sparse_", [])) for t in model.terms_))}
    if hasattr(model, "recipe_"):
        record["recipe"] = model.recipe_.to_dict()
        print(model.recipe_.format_table())
    print(json.dumps(record))
    with open(a.out, "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
