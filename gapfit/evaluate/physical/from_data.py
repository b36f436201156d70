"""Properties derived from labelled data (the mlearn "Elastic" and "Vacancy" groups): elastic
constants (GPa), zero-stress volume (Å³/atom) and lattice constant (Å), vacancy formation energy (eV)."""
from dataclasses import dataclass
from typing import Optional

import numpy as np
from ase import units

from ...structures.io import labels
from .cells import evaluated
from .elastic import ElasticConstants, fit_elastic_constants
from .strain import strain_between, strain_deformation


@dataclass
class DataProperties:
    """Properties derived from labelled cells by fixed formulas (see ``properties_from_data``).

    elastic : ElasticConstants from the Elastic group. volume : zero-stress volume, Å³/atom.
    lattice_constant : Å (None without ``atoms_per_cell``). bulk_modulus : Voigt, GPa.
    vacancy_formation : eV (None without vacancy cells). notes : which cells were used.
    """

    elastic: ElasticConstants
    volume: float
    lattice_constant: Optional[float]
    bulk_modulus: float
    vacancy_formation: Optional[float]
    notes: dict


def _config_type(atoms):
    return str(atoms.info.get("config_type", "default"))


def _energy_and_stress(atoms, calculator, what):
    """Energy (eV) and stress (eV/Å³) of a data cell: its labels, or ``calculator`` on it."""
    if calculator is not None:
        sample = evaluated(atoms, calculator)
        return sample.get_potential_energy(), sample.get_stress()
    energy, _, stress = labels(atoms)
    if energy is None or stress is None:
        raise ValueError(f"{what}: needs a reference energy and stress")
    return energy, stress


def reference_cell(cells):
    """Index of the unstrained cell of a strain series: the one closest to the element-wise
    median cell (each strain moves only some entries, in both directions)."""
    cells = np.asarray(cells)
    median = np.median(cells, axis=0)
    return int(np.argmin(np.linalg.norm((cells - median).reshape(len(cells), -1), axis=1)))


def properties_from_data(structures, calculator=None, atoms_per_cell=None, elastic_type="Elastic",
                         vacancy_type="Vacancy", max_strain=0.05):
    """Elastic constants, zero-stress volume and lattice constant, bulk modulus and vacancy
    formation energy derived from labelled data, the same way for DFT and for a model.

    structures : labelled Atoms with ``info["config_type"]`` (e.g. ``gapfit.io.read_mlearn``).
    calculator : None uses the data's own labels (DFT); a calculator is evaluated on the very
        same cells, so both go through identical formulas on identical geometries.
    atoms_per_cell : atoms in the conventional cubic cell (2 for bcc, 8 for diamond) to turn
        the volume per atom into a lattice constant.

    Elastic: the largest group of ``elastic_type`` cells with one atom count; its unstrained
    cell is found by ``reference_cell``, strains are measured against it, cells strained
    beyond ``max_strain`` are left out, and ``fit_elastic_constants`` fits stress against
    strain (slopes at zero strain, ions as in the data: unrelaxed if the data's are).
    Lattice: the reference cell brought to zero stress with that stiffness (linear response).
    Bulk modulus: the Voigt average of the stiffness.
    Vacancy: among ``vacancy_type`` cells that are a strained copy of the reference cell
    with fewer atoms, the one with the smallest reference RMS force (closest to relaxed);
    E_f = E_vac − N_vac · e_bulk, with the bulk energy per atom of the reference cell
    carried to the vacancy cell's strain by second-order elasticity,
    e_bulk = [E_ref + V_ref (σ0·ε + ½ ε·C·ε)] / N_ref. The choice of cell uses the data's
    labels in both cases. Data cells are snapshots, so E_f includes whatever thermal
    displacement energy the vacancy cell carries beyond the reference cell.
    """
    structures = list(structures)
    elastic_cells = [atoms for atoms in structures if _config_type(atoms) == elastic_type]
    if not elastic_cells:
        raise ValueError(f"no {elastic_type!r} configurations in the data")
    sizes = np.array([len(atoms) for atoms in elastic_cells])
    size = int(np.bincount(sizes).argmax())
    group = [atoms for atoms in elastic_cells if len(atoms) == size]
    if len(group) < 7:
        raise ValueError(f"{elastic_type!r}: need at least 7 cells of one size for elastic "
                         f"constants, the largest group has {len(group)} cells of {size} atoms")
    cells = np.array([atoms.cell.array for atoms in group])
    reference = group[reference_cell(cells)]
    strains, stresses, skipped = [], [], 0
    for index, atoms in enumerate(group):
        strain = strain_between(reference.cell.array, atoms.cell.array)
        if np.abs(strain).max() > max_strain + 1e-9:
            skipped += 1
            continue
        strains.append(strain)
        stresses.append(_energy_and_stress(atoms, calculator, f"{elastic_type} cell {index}")[1])
    elastic = fit_elastic_constants(strains, stresses)

    n_ref, volume_ref = len(reference), reference.get_volume()
    stiffness = elastic.matrix * units.GPa
    residual_stress = elastic.stress * units.GPa
    zero_stress = np.linalg.solve(stiffness, -residual_stress)
    volume = volume_ref * np.linalg.det(strain_deformation(zero_stress)) / n_ref
    lattice = (volume * atoms_per_cell) ** (1 / 3) if atoms_per_cell else None
    notes = {"elastic_cells": len(strains), "elastic_cells_beyond_max_strain": skipped,
             "reference_atoms": n_ref, "reference_volume_A3": float(volume_ref)}

    vacancy_energy = None
    candidates = []
    for atoms in structures:
        if _config_type(atoms) != vacancy_type or not len(atoms) < n_ref:
            continue
        strain = strain_between(reference.cell.array, atoms.cell.array)
        _, forces, _ = labels(atoms)
        if np.abs(strain).max() <= max_strain and forces is not None:
            candidates.append((float(np.sqrt(np.mean(forces ** 2))), atoms, strain))
    if candidates:
        rms_force, vacancy_cell, strain = min(candidates, key=lambda item: item[0])
        reference_energy, _ = _energy_and_stress(reference, calculator, f"{elastic_type} reference")
        vacancy_cell_energy, _ = _energy_and_stress(vacancy_cell, calculator, f"{vacancy_type} cell")
        elastic_energy = volume_ref * (residual_stress @ strain + 0.5 * strain @ stiffness @ strain)
        bulk_per_atom = (reference_energy + elastic_energy) / n_ref
        vacancy_energy = float(vacancy_cell_energy - len(vacancy_cell) * bulk_per_atom)
        notes.update({"vacancy_cells": len(candidates), "vacancy_cell_atoms": len(vacancy_cell),
                      "vacancy_cell_rms_force_eV_per_A": rms_force,
                      "vacancy_cell_strain": strain.round(5).tolist()})
    return DataProperties(elastic, float(volume), lattice, elastic.bulk_modulus, vacancy_energy, notes)
