"""Equation of state: energy–volume curve of isotropically scaled copies of a structure and its
Birch–Murnaghan fit (equilibrium volume Å³/atom, energy eV/atom, bulk modulus GPa)."""
from dataclasses import dataclass, field

import numpy as np
from ase import units

from .cells import evaluated, relax_positions
from .strain import strained


@dataclass
class EquationOfState:
    """Energy–volume curve of isotropically scaled copies of a structure, Birch–Murnaghan fit.

    volumes : (n,) Å³/atom. energies : (n,) eV/atom.
    volume : equilibrium volume, Å³/atom. energy : eV/atom. bulk_modulus : GPa.
    bulk_modulus_derivative : B' (dimensionless).
    reference : the structure that was scaled (Atoms, as given).
    """

    volumes: np.ndarray
    energies: np.ndarray
    volume: float
    energy: float
    bulk_modulus: float
    bulk_modulus_derivative: float
    reference: object = field(repr=False)

    @property
    def scale(self):
        """Linear factor taking the reference cell to the equilibrium volume."""
        return (self.volume * len(self.reference) / self.reference.get_volume()) ** (1 / 3)

    @property
    def lattice_parameters(self):
        """Lengths (Å) of the equilibrium cell vectors: the reference's a, b, c scaled.
        For a conventional cubic cell, the first is the lattice constant."""
        return self.scale * self.reference.cell.lengths()

    @property
    def lattice_constant(self):
        """First lattice parameter (Å) of the equilibrium cell."""
        return float(self.lattice_parameters[0])

    def equilibrium_structure(self):
        """The reference structure scaled to the equilibrium volume (no calculator)."""
        atoms = self.reference.copy()
        atoms.calc = None
        atoms.set_cell(atoms.cell.array * self.scale, scale_atoms=True)
        return atoms

    def energy_curve(self, volumes):
        """Birch–Murnaghan energy (eV/atom) at ``volumes`` (Å³/atom)."""
        from ase.eos import birchmurnaghan
        bulk_modulus = self.bulk_modulus * units.GPa
        return birchmurnaghan(np.asarray(volumes), self.energy, bulk_modulus,
                              self.bulk_modulus_derivative, self.volume)


def fit_birch_murnaghan(volumes, energies, reference):
    """Birch–Murnaghan fit (ASE) of energies (eV/atom) against volumes (Å³/atom)."""
    from ase.eos import EquationOfState as AseEOS
    volumes, energies = np.asarray(volumes, float), np.asarray(energies, float)
    if len(volumes) < 5:
        raise ValueError(f"equation of state: need at least 5 volumes, got {len(volumes)}")
    eos = AseEOS(volumes, energies, eos="birchmurnaghan")
    volume, energy, bulk_modulus = eos.fit(warn=False)
    if not volumes.min() <= volume <= volumes.max():
        raise ValueError(f"equation of state of {reference.get_chemical_formula()}: the fitted "
                         f"minimum {volume:.3f} Å³/atom lies outside the sampled volumes "
                         f"{volumes.min():.3f}–{volumes.max():.3f} Å³/atom")
    return EquationOfState(volumes, energies, float(volume), float(energy),
                           float(bulk_modulus / units.GPa), float(eos.eos_parameters[2]), reference)


def energy_volume(calculator, atoms, strains=np.linspace(-0.02, 0.02, 9), relax_ions=False,
                  fmax=1e-3, recentre=True):
    """Equation of state of ``atoms`` under ``calculator``.

    strains : linear strains applied isotropically (volumes scale by (1 + s)³).
    relax_ions : relax positions at each volume (fixed cell) with BFGS to ``fmax`` eV/Å.
    recentre : after a first fit, sample the same strains again around its minimum, so that
        the fit is centred on the equilibrium even from a poor starting lattice.
    Returns an EquationOfState (per-atom volumes and energies).
    """
    reference = atoms.copy()
    reference.calc = None
    if not reference.pbc.all():
        raise ValueError(f"equation of state of {reference.get_chemical_formula()}: needs a "
                         "structure periodic in three directions")
    result = _sample_and_fit(calculator, reference, strains, relax_ions, fmax)
    if recentre:
        result = _sample_and_fit(calculator, result.equilibrium_structure(), strains, relax_ions, fmax)
        result.reference = reference
    return result


def _sample_and_fit(calculator, reference, strains, relax_ions, fmax):
    volumes, energies = [], []
    for strain in strains:
        sample = evaluated(strained(reference, [strain] * 3 + [0, 0, 0]), calculator)
        if relax_ions:
            relax_positions(sample, fmax)
        volumes.append(sample.get_volume() / len(sample))
        energies.append(sample.get_potential_energy() / len(sample))
    return fit_birch_murnaghan(volumes, energies, reference)
