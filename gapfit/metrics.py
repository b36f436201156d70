"""Validation errors: energy per atom, forces, stress; MAE and RMSE, overall and per config_type.

Errors are reported in eV-based units inside dictionaries; ``error_table``
turns them into meV/atom, meV/Å and GPa for people.
"""
import numpy as np
from ase.units import GPa

from .io import labels as reference_labels


def _mae_rmse(differences):
    differences = np.asarray(differences, dtype=np.float64).ravel()
    if differences.size == 0:
        return {"mae": float("nan"), "rmse": float("nan"), "n": 0}
    return {"mae": float(np.mean(np.abs(differences))),
            "rmse": float(np.sqrt(np.mean(differences ** 2))), "n": int(differences.size)}


def force_errors(model, structures):
    """MAE/RMSE (eV/Å) of force components against the reference labels."""
    return evaluate(model, structures)["forces"]


def evaluate(model, structures):
    """Errors of ``model`` on labelled ``structures``.

    Returns {"energy" (eV/atom), "forces" (eV/Å), "stress" (eV/Å³)} each with
    mae, rmse, n, and "by_config_type" with the same per group.
    """
    records = []
    for atoms in structures:
        energy, forces, stress = reference_labels(atoms)
        prediction = model.predict_structure(atoms)
        record = {"config_type": atoms.info.get("config_type", "default"),
                  "energy": None, "forces": None, "stress": None}
        if energy is not None:
            record["energy"] = (prediction.energy - energy) / len(atoms)
        if forces is not None:
            record["forces"] = (prediction.forces - forces).ravel()
        if stress is not None and atoms.pbc.all():
            predicted = (-prediction.virial / atoms.get_volume()).flat[[0, 4, 8, 5, 2, 1]]
            record["stress"] = predicted - stress
        records.append(record)
    result = _summarise(records)
    groups = sorted({r["config_type"] for r in records})
    result["by_config_type"] = {g: _summarise([r for r in records if r["config_type"] == g])
                                for g in groups}
    return result


def _summarise(records):
    summary = {}
    for key in ("energy", "forces", "stress"):
        values = [r[key] for r in records if r[key] is not None]
        summary[key] = _mae_rmse(np.concatenate([np.atleast_1d(v) for v in values]) if values else [])
    return summary


def error_table(result):
    """Rows (label, E MAE, E RMSE meV/atom, F MAE, F RMSE meV/Å, S MAE, S RMSE GPa)."""
    def row(label, summary):
        return (label, 1e3 * summary["energy"]["mae"], 1e3 * summary["energy"]["rmse"],
                1e3 * summary["forces"]["mae"], 1e3 * summary["forces"]["rmse"],
                summary["stress"]["mae"] / GPa, summary["stress"]["rmse"] / GPa)
    rows = [row("all", result)]
    rows += [row(group, summary) for group, summary in result.get("by_config_type", {}).items()]
    return rows


def scorer(metric="force_rmse"):
    """A scikit-learn scorer (greater is better): minus an error of ``evaluate``.

    metric : "energy_mae", "energy_rmse", "force_mae", "force_rmse",
    "stress_mae" or "stress_rmse".
    """
    kind, statistic = metric.split("_")
    key = {"energy": "energy", "force": "forces", "stress": "stress"}[kind]

    def score(estimator, X, y=None):
        return -evaluate(estimator, list(X))[key][statistic]

    score.__name__ = f"neg_{metric}"
    return score
