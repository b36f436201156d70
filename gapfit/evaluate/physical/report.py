"""All properties at once: the reference crystal of an element, the property report (equation of
state, elastic constants, vacancy, phonons, MD) and its text table and JSON form."""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .defects import VacancyFormation, vacancy_formation_energy
from .elastic import ElasticConstants, elastic_constants
from .eos import EquationOfState, energy_volume
from .lattice_dynamics import PhononResult, phonons
from .md_check import MDStability, md_stability


def reference_crystal(species):
    """ASE's reference crystal of one element (``ase.build.bulk``): (conventional cubic cell when
    the lattice has one, else the primitive cell; primitive cell). ``species``: a chemical symbol,
    an atomic number, or a list holding exactly one of them."""
    from ase.build import bulk
    from ase.data import chemical_symbols, reference_states
    if isinstance(species, (list, tuple, np.ndarray)):
        if len(species) != 1:
            names = [chemical_symbols[int(z)] if not isinstance(z, str) else z for z in species]
            raise ValueError(f"a reference crystal needs one element, the model has {len(names)} "
                             f"({', '.join(names)}); give a structure file instead")
        species = species[0]
    symbol = species if isinstance(species, str) else chemical_symbols[int(species)]
    number = chemical_symbols.index(symbol) if symbol in chemical_symbols else -1
    state = reference_states[number] if number > 0 else None
    if not state or state.get("symmetry") not in ("fcc", "bcc", "diamond", "sc", "hcp", "rocksalt",
                                                  "zincblende"):
        kind = state.get("symmetry") if state else "no"
        raise ValueError(f"ASE has {kind} reference crystal for {symbol}; give a structure file")
    primitive = bulk(symbol)
    try:
        conventional = bulk(symbol, cubic=True)
    except (ValueError, RuntimeError):  # hcp and other non-cubic lattices
        conventional = primitive.copy()
    return conventional, primitive


@dataclass
class PropertyReport:
    """Everything ``properties`` computed; fields are None when a step was skipped."""

    eos: EquationOfState
    elastic: Optional[ElasticConstants] = None
    vacancy: Optional[VacancyFormation] = None
    phonons: Optional[PhononResult] = None
    md: Optional[MDStability] = None

    def values(self):
        """{name: (value, unit)} of the headline numbers."""
        rows = {"lattice constant": (self.eos.lattice_constant, "Å"),
                "volume": (self.eos.volume, "Å³/atom"),
                "energy at equilibrium": (self.eos.energy, "eV/atom"),
                "bulk modulus (EOS)": (self.eos.bulk_modulus, "GPa")}
        if self.elastic is not None:
            for name, value in self.elastic.cubic.items():
                rows[name] = (value, "GPa")
            rows["bulk modulus (Voigt)"] = (self.elastic.bulk_modulus, "GPa")
        if self.vacancy is not None:
            rows["vacancy formation (relaxed)"] = (self.vacancy.relaxed, "eV")
            rows["vacancy formation (unrelaxed)"] = (self.vacancy.unrelaxed, "eV")
        if self.phonons is not None:
            rows["lowest phonon frequency"] = (self.phonons.min_frequency, "THz")
            rows["highest phonon frequency"] = (float(self.phonons.band_frequencies.max()), "THz")
        if self.md is not None:
            rows["MD closest approach"] = (self.md.min_distance, "Å")
            rows["MD energy change"] = (self.md.max_energy_change, "eV/atom")
        return rows


def properties(calculator, atoms, primitive=None, elastic=True, vacancy=True, phonon=True, md=True,
               md_temperature_K=300.0, md_time_ps=2.0, relax_ions=True, random_state=0):
    """Equation of state, then (at its equilibrium volume) elastic constants, vacancy formation
    energy, phonons and MD stability of ``atoms`` under ``calculator``.

    atoms : the reference structure (a conventional cubic cell gives the cubic lattice constant).
    primitive : the cell for phonons (its band path); default ``atoms``. It is scaled to the
        same equilibrium volume per atom.
    Returns a PropertyReport.
    """
    eos = energy_volume(calculator, atoms)
    equilibrium = eos.equilibrium_structure()
    report = PropertyReport(eos)
    if elastic:
        report.elastic = elastic_constants(calculator, equilibrium, relax_ions=relax_ions)
    if vacancy:
        report.vacancy = vacancy_formation_energy(calculator, equilibrium)
    if phonon:
        cell = (primitive if primitive is not None else atoms).copy()
        scale = (eos.volume * len(cell) / cell.get_volume()) ** (1 / 3)
        cell.set_cell(cell.cell.array * scale, scale_atoms=True)
        report.phonons = phonons(calculator, cell)
    if md:
        report.md = md_stability(calculator, equilibrium, temperature_K=md_temperature_K,
                                 time_ps=md_time_ps, random_state=random_state)
    return report


def relative_error(value, reference):
    """(value − reference) / |reference|, NaN when either is missing or the reference is 0."""
    if value is None or reference is None or not np.isfinite(reference) or reference == 0:
        return float("nan")
    return (value - reference) / abs(reference)


def format_table(values, references=None, title="property"):
    """Text table of {name: (value, unit)} with optional {name: reference} and relative errors."""
    references = references or {}
    width = max([len(title)] + [len(name) for name in values]) + 2
    lines = [f"{title:<{width}}{'unit':<9}{'model':>12}"
             + (f"{'reference':>12}{'rel. error':>12}" if references else "")]
    for name, (value, unit) in values.items():
        line = f"{name:<{width}}{unit:<9}{value:>12.4g}"
        if references:
            reference = references.get(name)
            if reference is None:
                line += f"{'—':>12}{'':>12}"
            else:
                line += f"{reference:>12.4g}{100 * relative_error(value, reference):>+11.2f}%"
        lines.append(line)
    return "\n".join(lines)


def report_json(report):
    """A JSON-ready dict of a PropertyReport (numbers and small arrays only)."""
    document = {name: {"value": value, "unit": unit} for name, (value, unit) in report.values().items()}
    document["elastic_matrix_GPa"] = None if report.elastic is None else report.elastic.matrix.tolist()
    if report.phonons is not None:
        document["phonon_special_points_THz"] = {label: frequencies.tolist() for label, frequencies
                                                 in report.phonons.special_points.items()}
    if report.md is not None:
        document["md"] = {"stable": report.md.stable, "reason": report.md.reason,
                          "time_ps": report.md.time_ps, "temperature_K": report.md.temperature_K,
                          "n_atoms": report.md.n_atoms}
    return document
