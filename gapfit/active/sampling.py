"""Candidate structures for a training set, made from one starting structure, and a diversity filter.

Generators: rattled cells, volumetric and shear strains, vacancies, interstitials, surface
slabs along Miller indices, and MD snapshots at several temperatures with any ASE
calculator. Each returns new Atoms without a calculator (ready to be labelled by DFT or a
cheap calculator) and records how it was made in ``atoms.info["config_type"]``. Randomness
only through ``random_state`` (an int, None or a numpy Generator): the same seed gives the
same structures. ``farthest_point`` keeps the n most different structures of a pool, in the
space of SOAP features averaged over each structure.
"""
import numpy as np

from ..md.dynamics import initialise_velocities, make_dynamics
from ..gp.sparse import farthest_point_indices
from ..structures.neighbors import build_neighbor_list

DEFAULT_MILLER_INDICES = ((1, 0, 0), (1, 1, 0), (1, 1, 1))


def _rng(random_state):
    """A numpy Generator from an int, None or a Generator (used as is, so calls chain reproducibly)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def _check_count(n, what):
    if int(n) != n or n < 0:
        raise ValueError(f"{what}: the number of structures must be an integer >= 0, got {n!r}")
    return int(n)


def _candidate(atoms, config_type, **info):
    """A copy of ``atoms`` without calculator, momenta or labels, tagged with its config_type."""
    candidate = atoms.copy()
    candidate.calc = None
    if "momenta" in candidate.arrays:
        del candidate.arrays["momenta"]
    candidate.info = {key: value for key, value in candidate.info.items()
                      if key not in ("energy", "stress", "virial", "free_energy")}
    candidate.info["config_type"] = config_type
    candidate.info.update(info)
    return candidate


def _strained(atoms, strain_voigt):
    """``atoms`` with the cell deformed by the symmetric strain (Voigt xx yy zz yz xz xy,
    engineering shear), atoms moving with the cell."""
    exx, eyy, ezz, gyz, gxz, gxy = strain_voigt
    deformation = np.eye(3) + np.array([[exx, gxy / 2, gxz / 2],
                                        [gxy / 2, eyy, gyz / 2],
                                        [gxz / 2, gyz / 2, ezz]])
    strained = atoms.copy()
    strained.set_cell(atoms.cell.array @ deformation.T, scale_atoms=True)
    return strained


# ----------------------------------------------------------------------------- generators
def rattled(atoms, n, stdev=0.05, random_state=None):
    """n copies with every atom displaced by an independent Gaussian of ``stdev`` Å per component.

    config_type "rattled".
    """
    n = _check_count(n, "rattled")
    if stdev <= 0:
        raise ValueError(f"rattled: stdev must be > 0 Å, got {stdev}")
    rng = _rng(random_state)
    structures = []
    for _ in range(n):
        candidate = _candidate(atoms, "rattled", rattle_stdev=float(stdev))
        candidate.positions += rng.normal(0.0, stdev, size=candidate.positions.shape)
        structures.append(candidate)
    return structures


def volumetric_strained(atoms, n, max_strain=0.05, rattle_stdev=0.0, random_state=None):
    """n isotropically strained copies, linear strains evenly spaced in [-max_strain, max_strain].

    Volumes change by (1 + strain)³. With ``rattle_stdev`` (Å) > 0 atoms are also rattled.
    config_type "volumetric"; ``info["strain"]`` holds the linear strain.
    """
    n = _check_count(n, "volumetric_strained")
    _check_periodic(atoms, "volumetric_strained")
    if not 0 < max_strain < 0.5:
        raise ValueError(f"volumetric_strained: max_strain must be in (0, 0.5), got {max_strain}")
    rng = _rng(random_state)
    strains = np.linspace(-max_strain, max_strain, n) if n > 1 else np.array([max_strain])[:n]
    structures = []
    for strain in strains:
        candidate = _candidate(_strained(atoms, [strain] * 3 + [0.0] * 3), "volumetric",
                               strain=float(strain))
        if rattle_stdev > 0:
            candidate.positions += rng.normal(0.0, rattle_stdev, size=candidate.positions.shape)
        structures.append(candidate)
    return structures


def shear_strained(atoms, n, max_strain=0.05, rattle_stdev=0.0, random_state=None):
    """n copies under random shear: engineering shear strains yz, xz, xy drawn uniformly in
    [-max_strain, max_strain], volume kept to first order. config_type "shear";
    ``info["strain"]`` holds the Voigt strain (xx yy zz yz xz xy)."""
    n = _check_count(n, "shear_strained")
    _check_periodic(atoms, "shear_strained")
    if not 0 < max_strain < 0.5:
        raise ValueError(f"shear_strained: max_strain must be in (0, 0.5), got {max_strain}")
    rng = _rng(random_state)
    structures = []
    for _ in range(n):
        voigt = np.concatenate([np.zeros(3), rng.uniform(-max_strain, max_strain, 3)])
        candidate = _candidate(_strained(atoms, voigt), "shear", strain=voigt)
        if rattle_stdev > 0:
            candidate.positions += rng.normal(0.0, rattle_stdev, size=candidate.positions.shape)
        structures.append(candidate)
    return structures


def vacancies(atoms, n, n_vacancies=1, random_state=None):
    """n copies with ``n_vacancies`` randomly chosen atoms removed (a different choice each time
    while enough distinct choices exist). config_type "vacancy"; ``info["removed"]`` lists the
    indices removed from ``atoms``."""
    n = _check_count(n, "vacancies")
    if not 1 <= n_vacancies < len(atoms):
        raise ValueError(f"vacancies: cannot remove {n_vacancies} of {len(atoms)} atoms; "
                         "repeat the structure into a larger supercell first")
    rng = _rng(random_state)
    structures, seen = [], set()
    for _ in range(n):
        for _attempt in range(100):
            removed = tuple(sorted(rng.choice(len(atoms), size=n_vacancies, replace=False).tolist()))
            if removed not in seen:
                break
        seen.add(removed)
        candidate = _candidate(atoms, "vacancy", removed=np.array(removed))
        del candidate[list(removed)]
        structures.append(candidate)
    return structures


def interstitials(atoms, n, species=None, n_trials=200, random_state=None):
    """n copies with one extra atom at the emptiest of ``n_trials`` random points in the cell.

    species : chemical symbol of the inserted atom; None draws one of the structure's species.
    The chosen point has the largest distance to its nearest atom (periodic images included).
    config_type "interstitial"; ``info["nearest_distance"]`` (Å) records that distance.
    """
    n = _check_count(n, "interstitials")
    _check_periodic(atoms, "interstitials")
    if len(atoms) == 0:
        raise ValueError("interstitials: the structure has no atoms")
    rng = _rng(random_state)
    symbols = sorted(set(atoms.get_chemical_symbols()))
    structures = []
    for _ in range(n):
        symbol = species if species is not None else symbols[rng.integers(len(symbols))]
        trials = rng.random((n_trials, 3)) @ atoms.cell.array
        nearest = _nearest_atom_distances(atoms, trials)
        best = int(np.argmax(nearest))
        candidate = _candidate(atoms, "interstitial", nearest_distance=float(nearest[best]))
        candidate.append(symbol)
        candidate.positions[-1] = trials[best]
        structures.append(candidate)
    return structures


def _nearest_atom_distances(atoms, points):
    """Distance (Å) from each point to its nearest atom under the minimum-image convention."""
    from ase.geometry import get_distances
    _, distances = get_distances(points, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    return distances.min(axis=1)


def surfaces(atoms, miller_indices=DEFAULT_MILLER_INDICES, layers=4, vacuum=8.0):
    """One slab per Miller index (``ase.build.surface``): ``layers`` layers, ``vacuum`` Å on each
    side, periodic in all three directions so that stresses stay defined.

    Pass the conventional cell (e.g. ``bulk("Cu", cubic=True)``) for the usual indices.
    config_type "surface_hkl" (e.g. "surface_110"); ``info["miller"]`` holds the indices.
    """
    from ase.build import surface
    _check_periodic(atoms, "surfaces")
    slabs = []
    for indices in miller_indices:
        indices = tuple(int(i) for i in indices)
        if len(indices) != 3 or not any(indices):
            raise ValueError(f"surfaces: Miller indices must be three integers, not all zero; "
                             f"got {indices}")
        slab = surface(atoms, indices, layers, vacuum=vacuum, periodic=True)
        name = "".join(str(i) if i >= 0 else f"-{-i}" for i in indices)
        slabs.append(_candidate(slab, f"surface_{name}", miller=np.array(indices)))
    return slabs


def md_snapshots(atoms, calculator, temperatures_K=(300.0, 1000.0), n_per_temperature=5,
                 interval=20, equilibration_steps=100, timestep_fs=2.0, friction_per_fs=0.02,
                 random_state=None):
    """Snapshots of Langevin NVT runs with ``calculator``, one run per temperature.

    Each run starts from ``atoms`` with Maxwell–Boltzmann velocities, equilibrates for
    ``equilibration_steps`` steps of ``timestep_fs`` fs and then keeps a snapshot every
    ``interval`` steps until it has ``n_per_temperature``. config_type "md_300K" etc.;
    ``info["temperature_K"]`` is the thermostat target, ``info["time_ps"]`` the time.
    The calculator's energies are not kept: the snapshots are candidates for labelling.
    """
    n_per_temperature = _check_count(n_per_temperature, "md_snapshots")
    if interval < 1 or equilibration_steps < 0:
        raise ValueError(f"md_snapshots: interval must be >= 1 and equilibration_steps >= 0, "
                         f"got {interval} and {equilibration_steps}")
    rng = _rng(random_state)
    structures = []
    for temperature in temperatures_K:
        if temperature <= 0:
            raise ValueError(f"md_snapshots: temperatures must be > 0 K, got {temperature}")
        system = atoms.copy()
        system.calc = calculator
        initialise_velocities(system, temperature, rng)
        dynamics = make_dynamics(system, "nvt", timestep_fs=timestep_fs, temperature_K=temperature,
                                 friction_per_fs=friction_per_fs, rng=rng)
        dynamics.run(equilibration_steps)
        for _ in range(n_per_temperature):
            dynamics.run(interval)
            structures.append(_candidate(system, f"md_{temperature:g}K",
                                         temperature_K=float(temperature),
                                         time_ps=dynamics.nsteps * timestep_fs / 1000.0))
    return structures


def _check_periodic(atoms, what):
    if not atoms.pbc.all() or atoms.cell.rank < 3:
        raise ValueError(f"{what}: needs a structure periodic in three directions with a full cell "
                         f"({atoms.get_chemical_formula()} has pbc={atoms.pbc.tolist()})")


# ----------------------------------------------------------------------------- a whole pool
def candidate_pool(atoms, n_rattled=10, n_volumetric=5, n_shear=5, n_vacancies=2,
                   n_interstitials=2, miller_indices=DEFAULT_MILLER_INDICES, calculator=None,
                   temperatures_K=(300.0, 1000.0), n_md_per_temperature=5, rattle_stdev=0.05,
                   max_strain=0.05, random_state=None):
    """All the generators above on one structure, in this order: rattled, volumetric, shear,
    vacancy, interstitial, surfaces, MD (only with a ``calculator``). Counts of 0 (or an
    empty ``miller_indices``) skip a kind. Strained and defective cells are rattled by
    ``rattle_stdev`` / 2 Å so that their forces carry information. One ``random_state``
    seeds everything."""
    rng = _rng(random_state)
    pool = rattled(atoms, n_rattled, rattle_stdev, rng)
    pool += volumetric_strained(atoms, n_volumetric, max_strain, rattle_stdev / 2, rng)
    pool += shear_strained(atoms, n_shear, max_strain, rattle_stdev / 2, rng)
    defects = vacancies(atoms, n_vacancies, random_state=rng) if n_vacancies else []
    defects += interstitials(atoms, n_interstitials, random_state=rng)
    for defect in defects:
        defect.positions += rng.normal(0.0, rattle_stdev / 2, size=defect.positions.shape)
    pool += defects
    if miller_indices:
        pool += surfaces(atoms, miller_indices)
    if calculator is not None and n_md_per_temperature:
        pool += md_snapshots(atoms, calculator, temperatures_K, n_md_per_temperature,
                             random_state=rng)
    return pool


# ----------------------------------------------------------------------------- diversity
def default_descriptor(structures):
    """A small SOAP (r_cut 5 Å, n_max 6, l_max 4) over all species of ``structures``."""
    from ..descriptors.soap import SOAPDescriptor
    species = sorted({int(z) for atoms in structures for z in atoms.numbers})
    return SOAPDescriptor(species, r_cut=5.0, n_max=6, l_max=4, sigma=0.5,
                          weighting={"function": "poly", "r0": 5.0, "c": 1.0, "m": 1.0})


def average_features(structures, descriptor=None):
    """(n_structures, n_features): each structure's descriptor features averaged over its atoms.

    descriptor : a ``gapfit.descriptors`` Descriptor (e.g. ``SOAPDescriptor``); default
    ``default_descriptor(structures)``. Units those of the descriptor (Å³ for SOAP).
    """
    structures = list(structures)
    descriptor = descriptor or default_descriptor(structures)
    averages = np.empty((len(structures), descriptor.n_features))
    for index, atoms in enumerate(structures):
        if len(atoms) == 0:
            raise ValueError(f"structure {index}: has no atoms")
        neighbor_list = build_neighbor_list(atoms, descriptor.cutoff)
        averages[index] = descriptor.compute(atoms, neighbor_list).features.mean(axis=0)
    return averages


def farthest_point(structures, n, descriptor=None, return_indices=False):
    """Keep the n most diverse structures: farthest-point selection on average SOAP features.

    Features are divided by their mean norm first, so the distances do not depend on the
    descriptor's units. Returns the kept structures in selection order (and their
    indices in ``structures`` with ``return_indices=True``).
    """
    structures = list(structures)
    features = average_features(structures, descriptor)
    scale = np.mean(np.linalg.norm(features, axis=1)) or 1.0
    indices = farthest_point_indices(features / scale, n)
    kept = [structures[i] for i in indices]
    return (kept, indices) if return_indices else kept
