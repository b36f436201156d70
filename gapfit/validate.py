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
"""
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from ase import units

from .io import labels, matrix_from_voigt
from .neighbors import build_neighbor_list

EV_PER_THZ = units._hplanck / units._e * 1e12  # phonon energy (eV) of one THz
VOIGT_NAMES = ("xx", "yy", "zz", "yz", "xz", "xy")


# ----------------------------------------------------------------------------- small helpers
def _evaluated(atoms, calculator):
    """A copy of ``atoms`` carrying ``calculator``."""
    copy = atoms.copy()
    copy.calc = calculator
    return copy


def strain_deformation(strain_voigt):
    """Deformation gradient I + ε of a Voigt strain (xx yy zz yz xz xy; engineering shears)."""
    return np.eye(3) + matrix_from_voigt(np.asarray(strain_voigt, dtype=np.float64)
                                         * np.array([1, 1, 1, 0.5, 0.5, 0.5]))


def strain_between(reference_cell, cell):
    """Voigt strain (engineering shears) taking ``reference_cell`` to ``cell`` (rows are lattice
    vectors): the symmetric part of F − I, with F = (reference⁻¹ · cell)ᵀ."""
    deformation = np.linalg.solve(np.asarray(reference_cell), np.asarray(cell)).T
    small = 0.5 * (deformation + deformation.T) - np.eye(3)
    return np.array([small[0, 0], small[1, 1], small[2, 2],
                     2 * small[1, 2], 2 * small[0, 2], 2 * small[0, 1]])


def strained(atoms, strain_voigt):
    """A copy of ``atoms`` with cell and positions deformed by the Voigt strain."""
    copy = atoms.copy()
    copy.set_cell(atoms.cell.array @ strain_deformation(strain_voigt).T, scale_atoms=True)
    return copy


def relax_positions(atoms, fmax=1e-3, steps=1000):
    """Relax the positions of ``atoms`` (which carries a calculator) at fixed cell with BFGS;
    returns the largest remaining force (eV/Å)."""
    from ase.optimize import BFGS
    forces = atoms.get_forces()
    if np.abs(forces).max() > fmax:
        BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
        forces = atoms.get_forces()
    return float(np.linalg.norm(forces, axis=1).max()) if len(atoms) else 0.0


def repeat_for_width(atoms, min_width):
    """Smallest repetition (n1, n2, n3) whose cell is at least ``min_width`` Å thick in each direction."""
    cell = atoms.cell.array
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
              for i in range(3)]
    return tuple(max(1, math.ceil(min_width / width - 1e-9)) for width in widths)


# ----------------------------------------------------------------------------- equation of state
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
        sample = _evaluated(strained(reference, [strain] * 3 + [0, 0, 0]), calculator)
        if relax_ions:
            relax_positions(sample, fmax)
        volumes.append(sample.get_volume() / len(sample))
        energies.append(sample.get_potential_energy() / len(sample))
    return fit_birch_murnaghan(volumes, energies, reference)


# ----------------------------------------------------------------------------- elastic constants
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
    sample = _evaluated(atoms, calculator)
    if relax_ions:
        relax_positions(sample, fmax)
    return sample.get_stress()


# ----------------------------------------------------------------------------- vacancy
@dataclass
class VacancyFormation:
    """Formation energy (eV) of one vacancy in a supercell of n_atoms sites:
    E(N−1 atoms) − (N−1)/N · E(N atoms), unrelaxed and after relaxing positions at fixed cell."""

    unrelaxed: float
    relaxed: float
    n_atoms: int
    max_force: float  # eV/Å remaining after relaxation


def vacancy_formation_energy(calculator, atoms, repeat=None, min_atoms=50, index=0, relax=True,
                             fmax=0.01, steps=1000):
    """Vacancy formation energy of ``atoms`` repeated into a supercell (eV).

    repeat : (n1, n2, n3); default the smallest cube repetition with at least ``min_atoms``.
    index : the atom removed. With ``relax`` the defective cell is relaxed (BFGS to ``fmax``
    eV/Å, fixed cell); the perfect cell is taken as is (at equilibrium its forces vanish).
    """
    if repeat is None:
        n = 1
        while n ** 3 * len(atoms) < min_atoms:
            n += 1
        repeat = (n, n, n)
    perfect = atoms.repeat(repeat)
    perfect.calc = None
    if not 0 <= index < len(perfect):
        raise ValueError(f"vacancy: index {index} is outside the supercell of {len(perfect)} atoms")
    bulk_energy = _evaluated(perfect, calculator).get_potential_energy()
    defective = _evaluated(perfect, calculator)
    del defective[index]
    n_atoms = len(perfect)
    unrelaxed = defective.get_potential_energy() - (n_atoms - 1) / n_atoms * bulk_energy
    max_force = float(np.linalg.norm(defective.get_forces(), axis=1).max())
    if relax:
        max_force = relax_positions(defective, fmax, steps)
    relaxed = defective.get_potential_energy() - (n_atoms - 1) / n_atoms * bulk_energy
    return VacancyFormation(float(unrelaxed), float(relaxed), n_atoms, max_force)


# ----------------------------------------------------------------------------- phonons
@dataclass
class PhononResult:
    """Phonons by finite displacements (ASE's ``Phonons``), frequencies in THz (imaginary < 0).

    path : ase BandPath. distances, special_distances : x-axis of the dispersion (1/Å).
    band_frequencies : (n_kpoints, n_modes) THz along the path.
    dos_frequencies, dos : THz and states/THz (integrates to 3 × atoms per cell).
    special_points : {label: (n_modes,) THz} at the path's special points.
    """

    path: object
    distances: np.ndarray
    special_distances: np.ndarray
    band_frequencies: np.ndarray
    dos_frequencies: np.ndarray
    dos: np.ndarray
    special_points: dict
    force_constants: object = field(default=None, repr=False)  # the ase.phonons.Phonons, read

    def frequencies(self, qpoints):
        """Frequencies (THz, imaginary < 0) at q-points given in the primitive cell's scaled
        reciprocal coordinates, shape (n_q, 3); returns (n_q, n_modes)."""
        qpoints = np.atleast_2d(np.asarray(qpoints, dtype=np.float64))
        return self.force_constants.band_structure(qpoints, verbose=False) / EV_PER_THZ

    @property
    def min_frequency(self):
        """Lowest frequency on the path (THz); clearly negative means an unstable mode."""
        return float(self.band_frequencies.min())


def phonons(calculator, atoms, supercell=None, min_width=10.0, delta=0.01, npoints=100,
            dos_kpoints=(20, 20, 20), dos_width=0.1):
    """Phonon dispersion along the cell's standard band path and the phonon DOS.

    atoms : the primitive cell is best (the band path is that of its lattice).
    supercell : repetition for the force constants; default one at least ``min_width`` Å thick.
    delta : displacement, Å. dos_width : Gaussian smearing of the DOS, THz.
    ASE's displacement files go to a temporary folder that is removed afterwards.
    """
    from ase.phonons import Phonons
    primitive = atoms.copy()
    primitive.calc = None
    supercell = tuple(supercell) if supercell is not None else repeat_for_width(primitive, min_width)
    path = primitive.cell.bandpath(npoints=npoints)
    with tempfile.TemporaryDirectory(prefix="gapfit_phonons_") as folder:
        phonon = Phonons(primitive, calculator, supercell=supercell, delta=delta,
                         name=str(Path(folder) / "phonon"))
        phonon.run()
        phonon.read(acoustic=True)
        bands = phonon.band_structure(path.kpts, verbose=False) / EV_PER_THZ
        labels_ = list(path.special_points)
        special = phonon.band_structure(np.array([path.special_points[k] for k in labels_]),
                                        verbose=False) / EV_PER_THZ
        top = max(float(bands.max()), 1e-3) * EV_PER_THZ * 1.1
        dos = phonon.get_dos(kpts=dos_kpoints, verbose=False).sample_grid(
            npts=400, xmin=0.0, xmax=top, width=dos_width * EV_PER_THZ)
    distances, special_distances, _ = path.get_linear_kpoint_axis()
    return PhononResult(path, distances, special_distances, bands,
                        dos.get_energies() / EV_PER_THZ, dos.get_weights() * EV_PER_THZ,
                        {label: special[i] for i, label in enumerate(labels_)}, phonon)


# ----------------------------------------------------------------------------- MD stability
@dataclass
class MDStability:
    """Outcome of ``md_stability``: stable unless atoms came too close or the energy blew up.

    time_ps : simulated time (ps; shorter than asked when the run stopped early).
    min_distance, min_distance_threshold : closest pair met (Å) and the limit.
    max_energy_change, energy_change_threshold : largest departure of the potential energy
        from its starting value, either way, eV/atom, and the limit (a rise is a blow-up, a
        drop a collapse into a spurious well). reason : "" when stable, else what went wrong.
    """

    stable: bool
    reason: str
    time_ps: float
    temperature_K: float
    n_atoms: int
    min_distance: float
    min_distance_threshold: float
    max_energy_change: float
    energy_change_threshold: float


def md_stability(calculator, atoms, temperature_K=300.0, time_ps=2.0, timestep_fs=2.0,
                 min_width=10.0, min_distance=None, max_energy_change=None, interval=10,
                 friction_per_fs=0.01, random_state=None):
    """Langevin NVT MD of ``atoms`` (repeated to ``min_width`` Å) checked every ``interval`` steps.

    min_distance : Å; default 0.6 × the shortest distance of the starting structure.
    max_energy_change : eV/atom, largest allowed |E_pot − E_pot(start)| per atom; default
        max(10 k_B T, 0.1 eV) (a harmonic solid started at its minimum rises by 1.5 k_B T).
    The run stops at the first violation or non-finite energy. Returns MDStability.
    """
    from .md import initialise_velocities, make_dynamics
    system = atoms.repeat(repeat_for_width(atoms, min_width)) if min_width else atoms.copy()
    system.calc = calculator
    shortest = _shortest_distance(system)
    threshold = 0.6 * shortest if min_distance is None else float(min_distance)
    change_limit = (max(10 * units.kB * temperature_K, 0.1) if max_energy_change is None
                    else float(max_energy_change))
    rng = np.random.default_rng(random_state)
    initialise_velocities(system, temperature_K, rng)
    dynamics = make_dynamics(system, "nvt", timestep_fs=timestep_fs, temperature_K=temperature_K,
                             friction_per_fs=friction_per_fs, rng=rng)
    n_atoms = len(system)
    start = system.get_potential_energy() / n_atoms
    closest, change, reason, temperatures = shortest, 0.0, "", []
    n_checks = max(1, int(round(time_ps * 1000 / timestep_fs / interval)))
    for _ in range(n_checks):
        dynamics.run(interval)
        energy = system.get_potential_energy() / n_atoms
        temperatures.append(system.get_temperature())
        closest = min(closest, _shortest_distance(system, threshold * 2))
        if not np.isfinite(energy) or not np.all(np.isfinite(system.positions)):
            reason = "energy or positions became non-finite"
        else:
            change = max(change, abs(energy - start))
            if closest < threshold:
                reason = f"two atoms came within {closest:.2f} Å (limit {threshold:.2f} Å)"
            elif abs(energy - start) > change_limit:
                reason = (f"potential energy {'rose' if energy > start else 'fell'} by "
                          f"{abs(energy - start):.3f} eV/atom (limit {change_limit:.3f} eV/atom)")
        if reason:
            break
    time_done = dynamics.nsteps * timestep_fs / 1000.0
    return MDStability(not reason, reason, time_done, float(np.mean(temperatures)), n_atoms,
                       float(closest), float(threshold), float(change), float(change_limit))


def _shortest_distance(atoms, cutoff=None):
    """Shortest interatomic distance (Å); ``cutoff`` when no pair is closer than it."""
    if cutoff is None:
        cutoff = 2.0 * (atoms.get_volume() / len(atoms)) ** (1 / 3) if atoms.pbc.all() else 6.0
        while True:
            distances = build_neighbor_list(atoms, cutoff).distances
            if distances.size:
                return float(distances.min())
            cutoff *= 2
    distances = build_neighbor_list(atoms, cutoff).distances
    return float(distances.min()) if distances.size else float(cutoff)


# ----------------------------------------------------------------------------- all at once
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


# ----------------------------------------------------------------------------- from data
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
        sample = _evaluated(atoms, calculator)
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


# ----------------------------------------------------------------------------- plots
def plot_equation_of_state(eos, path, references=None, title=None):
    """E–V points and Birch–Murnaghan curve (eV/atom against Å³/atom); returns the path.

    references : {label: EquationOfState or (volumes Å³/atom, energies eV/atom)}, drawn
        as points (and as a dashed curve for an EquationOfState) beside the model's.
    """
    from .plots import _figure, _save
    references = dict(references or {})
    figure = _figure(5.6, 4.2)
    axes = figure.add_subplot()
    point_sets = {label: ((ref.volumes, ref.energies) if isinstance(ref, EquationOfState) else ref)
                  for label, ref in references.items()}
    all_volumes = np.concatenate([np.asarray(eos.volumes)]
                                 + [np.asarray(v, dtype=float) for v, _ in point_sets.values()])
    grid = np.linspace(all_volumes.min(), all_volumes.max(), 200)
    axes.plot(grid, eos.energy_curve(grid), color="tab:blue",
              label=f"model: V0 {eos.volume:.3f} Å³, B {eos.bulk_modulus:.1f} GPa")
    axes.scatter(eos.volumes, eos.energies, color="tab:blue", s=18, zorder=3)
    colours = iter(["tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"])
    markers = iter(["x", "+", "^", "s", "v"])
    for label, reference in references.items():
        colour, marker = next(colours, "0.4"), next(markers, "o")
        volumes, energies = point_sets[label]
        if isinstance(reference, EquationOfState):
            axes.plot(grid, reference.energy_curve(grid), color=colour, linestyle="--")
            label = f"{label}: V0 {reference.volume:.3f} Å³, B {reference.bulk_modulus:.1f} GPa"
        axes.scatter(volumes, energies, color=colour, marker=marker, s=26, zorder=3, label=label)
    axes.set_xlabel("volume (Å³/atom)")
    axes.set_ylabel("energy (eV/atom)")
    axes.set_title(title or f"energy–volume, {eos.reference.get_chemical_formula()}")
    axes.legend(fontsize=7)
    return _save(figure, path)


def plot_phonons(result, path, title="phonons"):
    """Dispersion along the band path and the DOS beside it (THz); returns the path."""
    from .plots import _figure, _save
    figure = _figure(7.0, 4.2)
    bands, dos = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 1]})
    # a path with a jump ("...H,PN") repeats its distance there: draw each piece on its own
    pieces = np.split(np.arange(len(result.distances)),
                      np.flatnonzero(np.diff(result.distances) == 0) + 1)
    for piece in pieces:
        bands.plot(result.distances[piece], result.band_frequencies[piece], color="tab:blue",
                   linewidth=1.0)
    ticks = {}
    for x, name in zip(result.special_distances, result.path.get_linear_kpoint_axis()[2]):
        name = "Γ" if name == "G" else name
        ticks[x] = f"{ticks[x]}|{name}" if x in ticks and ticks[x] != name else name
    for x in ticks:
        bands.axvline(x, color="0.7", linewidth=0.6)
    bands.axhline(0.0, color="0.3", linewidth=0.6)
    bands.set_xticks(list(ticks), list(ticks.values()))
    bands.set_xlim(result.distances[0], result.distances[-1])
    bands.set_ylabel("frequency (THz)")
    bands.set_title(title)
    dos.fill_betweenx(result.dos_frequencies, 0.0, result.dos, color="tab:blue", alpha=0.5)
    dos.set_xlabel("DOS (1/THz)")
    dos.set_xlim(left=0.0)
    return _save(figure, path)
