"""Elastic constants from stress–strain: the 6×6 stiffness (GPa) fitted to strained cells, and
the cells strained (and optionally relaxed) under a calculator to feed the fit."""
from dataclasses import dataclass

import numpy as np
from ase import units

from .cells import evaluated, relax_positions
from .strain import strained


VOIGT_NAMES = ("xx", "yy", "zz", "yz", "xz", "xy")


@dataclass
class ElasticConstants:
    """Elastic stiffness from stress–strain.

    matrix : (6, 6) GPa, C[i, j] = ∂σ_i/∂ε_j in Voigt order (xx yy zz yz xz xy, engineering
        shear strains), stress in ASE's sign (positive under tension).
    stress : (6,) GPa, fitted stress of the unstrained reference cell.
    n_cells : number of strained cells in the fit.
    """

    matrix: np.ndarray
    stress: np.ndarray
    n_cells: int

    @property
    def cubic(self):
        """{"C11", "C12", "C44"} in GPa, each the average over its cubic-equivalent entries."""
        c = self.matrix
        return {"C11": float(np.mean(np.diag(c)[:3])),
                "C12": float(np.mean([c[0, 1], c[0, 2], c[1, 2], c[1, 0], c[2, 0], c[2, 1]])),
                "C44": float(np.mean(np.diag(c)[3:]))}

    @property
    def bulk_modulus(self):
        """Voigt bulk modulus (GPa): (C11 + C22 + C33 + 2 (C12 + C13 + C23)) / 9."""
        c = 0.5 * (self.matrix + self.matrix.T)
        return float((np.trace(c[:3, :3]) + 2 * (c[0, 1] + c[0, 2] + c[1, 2])) / 9)

    def zero_stress_strain(self):
        """Voigt strain that brings the reference cell to zero stress (linear response)."""
        return np.linalg.solve(self.matrix, -self.stress)


def fit_elastic_constants(strains, stresses, quadratic=True):
    """Least-squares stiffness from cells of known strain and stress.

    strains : (n, 6) Voigt strains against one reference cell (engineering shears; the
        reference itself may be a row of zeros). stresses : (n, 6) eV/Å³, ASE's sign.
    Every stress component is fitted as σ_i = σ0_i + Σ_j C_ij ε_j (+ Σ_j D_ij ε_j² with
    ``quadratic``, for strain components sampled at two or more non-zero values), so the
    linear coefficients are the slopes at zero strain even when the largest strains are
    no longer small. Raises ValueError when a strain component is never applied.
    Returns ElasticConstants in GPa.
    """
    strains = np.asarray(strains, dtype=np.float64).reshape(-1, 6)
    stresses = np.asarray(stresses, dtype=np.float64).reshape(-1, 6)
    applied = np.abs(strains) > 1e-8
    for j in range(6):
        if not applied[:, j].any():
            raise ValueError(f"elastic constants: no cell is strained along {VOIGT_NAMES[j]}, so "
                             f"column {j + 1} of the stiffness cannot be fitted")
    columns = [np.ones((len(strains), 1)), strains]
    if quadratic:
        curved = [j for j in range(6) if len(np.unique(np.round(strains[applied[:, j], j], 10))) >= 2]
        columns.append(strains[:, curved] ** 2)
    design = np.hstack(columns)
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise ValueError(f"elastic constants: the {len(strains)} strains do not determine the "
                         "stiffness (apply each strain component separately, at ± values)")
    coefficients, *_ = np.linalg.lstsq(design, stresses, rcond=None)
    return ElasticConstants(matrix=coefficients[1:7].T / units.GPa,
                            stress=coefficients[0] / units.GPa, n_cells=len(strains))


def elastic_constants(calculator, atoms, magnitudes=(0.005, 0.01), relax_ions=True, fmax=1e-4):
    """Stiffness of ``atoms`` (best at its equilibrium volume) by stress–strain.

    Each Voigt component is strained by ± each of ``magnitudes`` (engineering shear for
    yz, xz, xy); with ``relax_ions`` the positions are relaxed (BFGS, ``fmax`` eV/Å) in every
    strained cell, which gives the relaxed-ion constants (C44 of diamond needs it). The
    slopes at zero strain come from ``fit_elastic_constants``. Returns ElasticConstants (GPa).
    """
    reference = atoms.copy()
    reference.calc = None
    strains, stresses = [np.zeros(6)], [_stress(reference, calculator, relax_ions, fmax)]
    for j in range(6):
        for magnitude in magnitudes:
            for sign in (-1.0, 1.0):
                strain = np.zeros(6)
                strain[j] = sign * magnitude
                strains.append(strain)
                stresses.append(_stress(strained(reference, strain), calculator, relax_ions, fmax))
    return fit_elastic_constants(strains, stresses)


def _stress(atoms, calculator, relax_ions, fmax):
    sample = evaluated(atoms, calculator)
    if relax_ions:
        relax_positions(sample, fmax)
    return sample.get_stress()
