"""Research (issue 16, helper recipe3): fit one recipe on a full mlearn training set plus
k-fold CV models (folds by configuration, i::k), and store per-configuration predictions
(test, training in-sample, CV held-out) for a grid of sigma factors re-solved WITHOUT refits
(scaling a kind's sigma by s divides its R factor by s).

    python experiments/stress_fits.py Mo cos+ns1500 --folds 3

Recipe names as in experiments/structural.py (terms_of). Output: /tmp/h16/<el>_<name>.pkl
with one record per (set, grid point, configuration). Test set used for measuring only.
"""
import argparse
import copy
import itertools
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

import gapfit
from gapfit.predict.predictor import StructurePredictor
from gapfit.structures.io import labels as reference_labels
from gapfit.structures.voigt import stress_from_virial

sys.path.insert(0, str(Path(__file__).resolve().parent))
from structural import terms_of  # noqa: E402

MLEARN = Path("/work/shared/data/mlearn")
OUT = Path("/tmp/h16")
GRID = [(1, 1, 1), (1, 1, 0.3), (1, 1, 0.1), (1, 0.6, 1), (1, 0.6, 0.3), (1, 0.6, 0.1),
        (2.5, 0.6, 0.3), (2.5, 1, 0.3), (0.5, 1, 1), (0.5, 0.6, 0.3), (1, 0.4, 1), (1, 0.4, 0.3)]


def make_model(name, **extra):
    """structural.terms_of names plus: tbN (2-body n_sparse N), ttX (2-body theta X Å),
    sdX (SOAP delta X eV), tdX (2-body delta X eV), sgX (SOAP atom sigma X Å), smfps / smrandom (SOAP sparse_method)."""
    own = {"tb": ("n_sparse", int, 0), "tt": ("theta", float, 0), "sd": ("delta", float, 1),
           "td": ("delta", float, 0), "sg": ("sigma", float, 1)}
    parts, changes = [], []
    for part in name.split("+"):
        key = part[:2]
        if part in ("smfps", "smrandom", "smcur"):
            changes.append((1, "sparse_method", part[2:]))
        elif key in own and part[2:3].isdigit():
            attr, kind, position = own[key]
            changes.append((position, attr, kind(part[2:])))
        else:
            parts.append(part)
    terms, gap_kw = terms_of("+".join(parts))
    for position, attr, value in changes:
        if position == 0 and not isinstance(terms[0], gapfit.TwoBody):
            raise ValueError("no 2-body term")
        term = terms[position] if position == 0 else terms[-1]
        term.set_params(**{attr: value})
    cts = gap_kw.pop("config_type_sigma", None)
    if cts:
        base = (gap_kw.get("energy_sigma", 0.002), gap_kw.get("force_sigma", 0.05),
                gap_kw.get("virial_sigma", 0.05))
        gap_kw["config_type_sigma"] = {g: tuple(b * f for b, f in zip(base, fac))
                                       for g, (_, fac) in cts.items()}
    gap_kw.update(extra)
    return gapfit.GAP(terms=terms, random_state=0, optimize_hyperparameters=False, **gap_kw)


def resolved(model, factors):
    """A shallow copy with coefficients re-solved for sigma factors (energy, forces, virial)."""
    m = copy.copy(model)
    scale = dict(zip(("energy", "forces", "virial"), factors))
    m.data_factors_ = {k: r / scale[k] for k, r in model.data_factors_.items()}
    m.solve_coefficients()
    return m


def records(model, structures, indices, tag, grid_point):
    out = []
    predictor = StructurePredictor.from_model(model)
    for i, atoms in zip(indices, structures):
        energy, forces, stress = reference_labels(atoms)
        p = predictor.predict(atoms)
        out.append(dict(set=tag, grid=grid_point, index=int(i),
                        group=str(atoms.info.get("config_type")), n=len(atoms),
                        volume=atoms.get_volume(), e_ref=energy / len(atoms),
                        e_pred=p.energy / len(atoms), s_ref=stress,
                        s_pred=stress_from_virial(p.virial, atoms.get_volume()),
                        f_abs=np.abs(p.forces - forces).sum(), f_n=forces.size))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("element")
    p.add_argument("name")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--virial-weighting", default="tensor")
    p.add_argument("--chunk-atoms", type=int, default=512)
    p.add_argument("--no-train", action="store_true")
    p.add_argument("--evidence", type=float, default=None,
                   help="optimize_hyperparameters=F on the full fit; the folds are refitted "
                        "with its sigma scales and deltas (GAP.refit), so CV measures that state")
    a = p.parse_args()
    OUT.mkdir(exist_ok=True)
    train = gapfit.io.read_mlearn(MLEARN / f"{a.element}_train.json")
    test = gapfit.io.read_mlearn(MLEARN / f"{a.element}_test.json")
    extra = dict(virial_weighting=a.virial_weighting, chunk_atoms=a.chunk_atoms)
    rows, info = [], {}
    cpu, wall = time.process_time(), time.perf_counter()
    model = make_model(a.name, **extra)
    if a.evidence:
        model.set_params(optimize_hyperparameters=a.evidence)
    model.fit(train)
    if a.evidence:
        info["scales"] = dict(model.noise_.scales)
        info["deltas"] = [t.delta_ for t in model.terms_]
    info["fit_cpu_s"], info["fit_wall_s"] = time.process_time() - cpu, time.perf_counter() - wall
    info["peak_mb"] = model.peak_memory_mb_
    info["load"] = os.getloadavg()[0]
    print(a.element, a.name, info, flush=True)
    for g in GRID:
        m = resolved(model, g)
        rows += records(m, test, range(len(test)), "test", g)
        if g == (1, 1, 1) and not a.no_train:
            rows += records(m, train, range(len(train)), "train", g)
    for k in range(a.folds):
        held = list(range(k, len(train), a.folds))
        kept = [i for i in range(len(train)) if i % a.folds != k]
        fold = (model.refit([train[i] for i in kept]) if a.evidence
                else make_model(a.name, **extra).fit([train[i] for i in kept]))
        for g in GRID:
            rows += records(resolved(fold, g), [train[i] for i in held], held, "cv", g)
        print("fold", k, "done", time.perf_counter() - wall, flush=True)
    info["total_cpu_s"] = time.process_time() - cpu
    suffix = "" if a.virial_weighting == "tensor" else "+voigt"
    suffix += "" if a.chunk_atoms == 512 else f"+chunk{a.chunk_atoms}"
    suffix += "" if not a.evidence else f"+ev{a.evidence:g}"
    path = OUT / f"{a.element}_{a.name}{suffix}.pkl"
    with open(path, "wb") as f:
        pickle.dump({"info": info, "rows": rows, "grid": GRID}, f)
    print("wrote", path, info, flush=True)


if __name__ == "__main__":
    main()
