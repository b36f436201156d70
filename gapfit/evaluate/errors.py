"""Model against reference, value by value: parity data, their errors (MAE, RMSE, R²) and a report.

``parity_data`` pairs every reference energy (per atom), force component and
stress component with the model's prediction and its configuration's
``config_type``; ``parity_statistics`` summarises them overall and per
config_type; ``report`` gives the same numbers in display units (meV/atom,
meV/Å, GPa) for people (``format_report``) and for JSON. ``evaluate``, ``error_table`` and
``scorer`` give the same statistics as dictionaries, table rows and scikit-learn scorers
(``gapfit.metrics``).
"""
from dataclasses import dataclass, field

import numpy as np
from ase.units import GPa
from sklearn.utils.validation import check_is_fitted

from ..structures.checks import check_structures
from ..structures.io import labels as reference_labels
from ..structures.voigt import stress_from_virial

QUANTITIES = ("energy", "forces", "stress")
# display unit and the factor from eV-based units (eV/atom, eV/Å, eV/Å³) to it
DISPLAY_UNITS = {"energy": ("meV/atom", 1e3), "forces": ("meV/Å", 1e3), "stress": ("GPa", 1.0 / GPa)}


@dataclass
class Series:
    """Paired values of one quantity: reference, predicted (same units), config_type of each."""

    reference: np.ndarray
    predicted: np.ndarray
    config_types: np.ndarray

    @property
    def errors(self):
        return self.predicted - self.reference

    def subset(self, config_type):
        mask = self.config_types == config_type
        return Series(self.reference[mask], self.predicted[mask], self.config_types[mask])


@dataclass
class ParityData:
    """Energies per atom (eV/atom), force components (eV/Å), stress components (eV/Å³, ASE sign)."""

    energy: Series
    forces: Series
    stress: Series
    n_configurations: int = 0
    config_types: list = field(default_factory=list)

    def series(self, quantity):
        return getattr(self, quantity)


def _collect(pieces):
    if not pieces:
        empty = np.zeros(0)
        return Series(empty, empty.copy(), np.zeros(0, dtype=object))
    reference, predicted, groups = zip(*pieces)
    return Series(np.concatenate(reference), np.concatenate(predicted),
                  np.concatenate(groups).astype(object))


def parity_data(model, structures):
    """ParityData of a fitted model on labelled structures (labels via ``gapfit.structures.io.labels``).

    Stresses are compared only for structures periodic in 3D; a structure
    without a label, or with a label holding NaN or infinity, contributes nothing
    for that quantity (``label_gaps`` says which). Structures
    the model cannot predict (unknown species, overlapping atoms) raise
    ValueError naming the configuration.
    """
    structures = list(structures)
    check_is_fitted(model, "alpha_")
    check_structures(structures, species=model.species_)
    pieces = {quantity: [] for quantity in QUANTITIES}
    config_types = []
    for atoms in structures:
        energy, forces, stress = _finite_labels(atoms)
        group = str(atoms.info.get("config_type", "default"))
        config_types.append(group)
        prediction = model.predict_structure(atoms)
        if energy is not None:
            pieces["energy"].append((np.array([energy / len(atoms)]),
                                     np.array([prediction.energy / len(atoms)]), np.array([group])))
        if forces is not None:
            pieces["forces"].append((forces.ravel(), prediction.forces.ravel(),
                                     np.full(forces.size, group, dtype=object)))
        if stress is not None and atoms.pbc.all():
            predicted = stress_from_virial(prediction.virial, atoms.get_volume())
            pieces["stress"].append((stress, predicted, np.full(6, group, dtype=object)))
    return ParityData(*(_collect(pieces[q]) for q in QUANTITIES), n_configurations=len(config_types),
                      config_types=sorted(set(config_types)))


def _finite(value):
    return value is not None and bool(np.all(np.isfinite(value)))


def _finite_labels(atoms):
    """Reference (energy, forces, stress) with non-finite labels (and a stress of a structure not
    periodic in 3D) as None."""
    energy, forces, stress = reference_labels(atoms)
    return (energy if _finite(energy) else None, forces if _finite(forces) else None,
            stress if _finite(stress) and atoms.pbc.all() else None)


def label_gaps(structures):
    """{quantity: {"missing": [index], "non_finite": [index]}} of the configurations lacking a
    usable reference energy, forces or stress (stress: structures periodic in 3D only)."""
    gaps = {quantity: {"missing": [], "non_finite": []} for quantity in QUANTITIES}
    for index, atoms in enumerate(structures):
        for quantity, value in zip(QUANTITIES, reference_labels(atoms)):
            if quantity == "stress" and not atoms.pbc.all():
                continue
            if value is None:
                gaps[quantity]["missing"].append(index)
            elif not _finite(value):
                gaps[quantity]["non_finite"].append(index)
    return gaps


def _ranges(indices):
    """'0-4, 7, 9-10' of sorted integers."""
    parts, start = [], None
    for position, index in enumerate(indices):
        if start is None:
            start = index
        if position + 1 == len(indices) or indices[position + 1] != index + 1:
            parts.append(str(start) if start == index else f"{start}-{index}")
            start = None
    return ", ".join(parts)


def describe_label_gaps(gaps, n_configurations):
    """One sentence saying which configurations lack which label ('' if none do)."""
    phrases = []
    for quantity, gap in gaps.items():
        for kind, words in (("missing", "no reference"), ("non_finite", "NaN or infinite reference")):
            indices = gap[kind]
            if indices:
                which = ("all configurations" if len(indices) == n_configurations
                         else f"configuration{'s' if len(indices) > 1 else ''} {_ranges(indices)}")
                phrases.append(f"{which} {'have' if len(indices) > 1 else 'has'} {words} {quantity}")
    return "; ".join(phrases)


def error_statistics(reference, predicted):
    """{"n", "mae", "rmse", "max", "r2"} of predicted − reference (NaN where undefined).

    r2 = 1 − Σ(predicted − reference)² / Σ(reference − mean reference)², the
    coefficient of determination; NaN for fewer than two values or a constant reference.
    """
    reference = np.asarray(reference, dtype=np.float64).ravel()
    errors = np.asarray(predicted, dtype=np.float64).ravel() - reference
    if errors.size == 0:
        return {"n": 0, "mae": float("nan"), "rmse": float("nan"), "max": float("nan"),
                "r2": float("nan")}
    spread = float(np.sum((reference - reference.mean()) ** 2))
    r2 = 1.0 - float(np.sum(errors ** 2)) / spread if errors.size > 1 and spread > 0 else float("nan")
    return {"n": int(errors.size), "mae": float(np.mean(np.abs(errors))),
            "rmse": float(np.sqrt(np.mean(errors ** 2))), "max": float(np.max(np.abs(errors))),
            "r2": r2}


def parity_statistics(data):
    """{"all": {quantity: stats}, "by_config_type": {group: {quantity: stats}}}, eV-based units."""
    def summary(series_of):
        return {q: error_statistics(series_of(q).reference, series_of(q).predicted) for q in QUANTITIES}
    return {"all": summary(data.series),
            "by_config_type": {group: summary(lambda q, g=group: data.series(q).subset(g))
                               for group in data.config_types}}


def _display(stats, quantity):
    factor = DISPLAY_UNITS[quantity][1]
    shown = dict(stats)
    for key in ("mae", "rmse", "max"):
        shown[key] = stats[key] * factor
    return shown


def report(data):
    """Errors of ``data`` in display units (meV/atom, meV/Å, GPa), ready for JSON or a table.

    {"units": {...}, "n_configurations": int, "all": {quantity: stats},
    "by_config_type": {group: {quantity: stats}}}; stats as ``error_statistics``
    (mae, rmse, max in display units; r2 and n unchanged).
    """
    statistics = parity_statistics(data)
    return {"units": {q: DISPLAY_UNITS[q][0] for q in QUANTITIES},
            "n_configurations": data.n_configurations,
            "all": {q: _display(s, q) for q, s in statistics["all"].items()},
            "by_config_type": {group: {q: _display(s, q) for q, s in stats.items()}
                               for group, stats in statistics["by_config_type"].items()}}


def json_safe(value):
    """``value`` with NaN and infinities replaced by None (JSON has neither)."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _cell(value, width, digits):
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


def format_report(result):
    """A text table of a ``report``: one row per group, MAE/RMSE/R² of energy, forces, stress."""
    digits = {"energy": 3, "forces": 2, "stress": 4}
    groups = [("all", result["all"])] + list(result["by_config_type"].items())
    name_width = max(8, *(len(name) for name, _ in groups))
    units = result["units"]
    header = f"{'':<{name_width}} {'n_cfg':>5}" + "".join(
        f" | {q + ' (' + units[q] + ')':^26}" for q in QUANTITIES)
    columns = f"{'group':<{name_width}} {'':>5}" + " | {:>8} {:>8} {:>8}".format("MAE", "RMSE", "R²") * 3
    lines = [header, columns, "-" * len(columns)]
    for name, stats in groups:
        row = f"{name:<{name_width}} {stats['energy']['n']:>5}"
        for quantity in QUANTITIES:
            s = stats[quantity]
            row += (f" | {_cell(s['mae'], 8, digits[quantity])} {_cell(s['rmse'], 8, digits[quantity])}"
                    f" {_cell(s['r2'], 8, 4)}")
        lines.append(row)
    return "\n".join(lines)


# ---------------------------------------------------------------- summaries for scripts and search
def evaluate(model, structures):
    """Errors of ``model`` on labelled ``structures``: {"energy" (eV/atom), "forces" (eV/Å),
    "stress" (eV/Å³)}, each with n, mae, rmse, max and r2 (``error_statistics``), and
    "by_config_type" with the same per group."""
    statistics = parity_statistics(parity_data(model, structures))
    return {**statistics["all"], "by_config_type": statistics["by_config_type"]}


def force_errors(model, structures):
    """Statistics (eV/Å) of force components against the reference labels."""
    return evaluate(model, structures)["forces"]


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
