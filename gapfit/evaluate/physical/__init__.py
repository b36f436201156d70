"""Physical validation of a potential: the properties a small test error does not guarantee.

From any ASE calculator (a ``GAPCalculator`` above all) and a reference structure:
energy–volume curve with a Birch–Murnaghan fit (equilibrium lattice, bulk modulus), elastic
constants from stress–strain (full 6×6, C11/C12/C44 for cubic), relaxed vacancy formation
energy, phonons (ASE's finite displacements: dispersion, DOS, frequencies at the special
points) and an MD stability check. ``properties_from_data`` derives the same properties
from labelled data (the mlearn "Elastic" and "Vacancy" groups), by the same formulas, with
the data's DFT labels or with a calculator on the very same cells, so that a model and DFT
are compared on equal terms. Units: Å, eV, eV/Å; moduli and elastic constants in GPa;
phonon frequencies in THz.

Modules: ``strain`` (Voigt strain and strained cells), ``cells`` (calculator on a copy,
relaxation, supercell size), ``eos``, ``elastic``, ``defects`` (vacancy),
``lattice_dynamics`` (phonons), ``md_check`` (MD stability), ``report`` (all at once, tables,
JSON), ``from_data`` (the same properties from labelled data) and ``plots``.
"""
from .cells import evaluated, relax_positions, repeat_for_width
from .defects import VacancyFormation, vacancy_formation_energy
from .elastic import VOIGT_NAMES, ElasticConstants, elastic_constants, fit_elastic_constants
from .eos import EquationOfState, energy_volume, fit_birch_murnaghan
from .from_data import DataProperties, properties_from_data, reference_cell
from .lattice_dynamics import EV_PER_THZ, PhononResult, phonons
from .md_check import MDStability, md_stability
from .plots import plot_equation_of_state, plot_phonons
from .report import (PropertyReport, format_table, properties, reference_crystal, relative_error,
                     report_json)
from .strain import strain_between, strain_deformation, strained

__all__ = ["EV_PER_THZ", "VOIGT_NAMES",
           "strain_deformation", "strain_between", "strained",
           "relax_positions", "repeat_for_width",
           "EquationOfState", "fit_birch_murnaghan", "energy_volume",
           "ElasticConstants", "fit_elastic_constants", "elastic_constants",
           "VacancyFormation", "vacancy_formation_energy",
           "PhononResult", "phonons",
           "MDStability", "md_stability",
           "PropertyReport", "properties", "reference_crystal", "relative_error", "format_table",
           "report_json",
           "DataProperties", "properties_from_data", "reference_cell",
           "plot_equation_of_state", "plot_phonons"]
