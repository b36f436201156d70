"""The contract every descriptor fulfils: local environments and their gradients.

A descriptor turns one structure into feature vectors of local environments
(one per atom for SOAP/ACSF, one per pair for the 2-body term) and, on request,
the gradient of each feature vector with respect to each neighbour position,
stored sparsely per (environment, neighbour image) pair.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
from ase.data import atomic_numbers as ATOMIC_NUMBERS
from ase.data import chemical_symbols as CHEMICAL_SYMBOLS


@dataclass
class LocalEnvironments:
    """Feature vectors of the local environments of one structure.

    Attributes
    ----------
    features : (n_envs, n_features) float64
        Descriptor vector q of each environment (descriptor units, e.g. Å^-3
        for SOAP power spectra, Å for a distance).
    center_atoms : (n_envs,) int64
        Atom (index in the structure) whose local energy this environment
        contributes to.
    channels : (n_envs,) int64
        Kernel channel: environments of different channels never correlate
        (centre species for SOAP/ACSF, species pair for the 2-body term).
    pair_envs, pair_neighbors, pair_vectors, pair_gradients :
        Present when gradients were requested, else None. For every pair p of
        an environment e = pair_envs[p] and a neighbour image j' of atom
        j = pair_neighbors[p] with r_j' - r_{center} = pair_vectors[p] (Å),
        pair_gradients[p] = ∂q_e/∂r_j' with shape (3, n_features), per Å.
        The environment's own centre atom is not listed: because q depends on
        relative positions only, ∂q_e/∂r_center = -Σ_p ∂q_e/∂r_j'.
        A strain ε maps every pair vector D to (1+ε)D, so the derivative of
        any function of q with respect to strain follows from the same arrays.
    """

    features: np.ndarray
    center_atoms: np.ndarray
    channels: np.ndarray
    pair_envs: Optional[np.ndarray] = None
    pair_neighbors: Optional[np.ndarray] = None
    pair_vectors: Optional[np.ndarray] = None
    pair_gradients: Optional[np.ndarray] = None

    @property
    def n_envs(self):
        return self.features.shape[0]

    @property
    def has_gradients(self):
        return self.pair_gradients is not None


class Descriptor:
    """Base class: a descriptor maps a structure to LocalEnvironments.

    Subclasses set ``cutoff`` (Å, the neighbour-list radius they need) and
    implement ``n_features`` and ``compute``.
    """

    cutoff: float

    @property
    def n_features(self):
        raise NotImplementedError

    def compute(self, atoms, neighbor_list, gradients=False):
        """LocalEnvironments of ``atoms`` given its full neighbour list
        (``gapfit.structures.neighbors.build_neighbor_list(atoms, self.cutoff)``)."""
        raise NotImplementedError

    def forward(self, atoms, neighbor_list, reuse=None):
        """(LocalEnvironments without gradients, state): the features and what
        ``backward_from`` needs for their vector-Jacobian product. This generic version
        keeps only its inputs, so that ``backward_from`` is ``backward``; a descriptor whose
        backward would redo work of the forward pass overrides both to keep that work.
        ``reuse``: a state an earlier call returned, whose buffers may be filled again (its
        owner, e.g. the MD predictor, no longer needs it); ignored here."""
        return self.compute(atoms, neighbor_list, gradients=False), (atoms, neighbor_list)

    def backward_from(self, state, d_energy_d_features):
        """``backward`` for the structure and neighbour list ``forward`` saw (``state`` is
        its second result)."""
        atoms, neighbor_list = state
        return self.backward(atoms, neighbor_list, d_energy_d_features)

    def backward(self, atoms, neighbor_list, d_energy_d_features):
        """Chain rule from ∂E/∂q (n_envs, n_features) to ∂E/∂(pair vector).

        Returns (pair_envs, pair_neighbors, pair_vectors, d_energy_d_pair_vectors)
        with the last of shape (n_pairs, 3) in eV/Å. This generic version goes
        through the full pair gradients; descriptors override it with a
        faster path that never forms them.
        """
        env = self.compute(atoms, neighbor_list, gradients=True)
        upstream = d_energy_d_features[env.pair_envs]
        gradient = np.einsum("pak,pk->pa", env.pair_gradients, upstream)
        return env.pair_envs, env.pair_neighbors, env.pair_vectors, gradient


class ScaledDescriptor(Descriptor):
    """Another descriptor's features multiplied by a fixed vector ``scale`` (one per feature).

    Gradients scale the same way, and ``backward`` scales ∂E/∂q before handing it on,
    so forces and stresses stay exact. Used to standardise descriptors whose features
    span orders of magnitude (ACSF) before a squared-exponential kernel sees them.
    """

    def __init__(self, descriptor, scale):
        self.descriptor = descriptor
        self.scale = np.asarray(scale, dtype=np.float64)
        if self.scale.shape != (descriptor.n_features,):
            raise ValueError(f"scale must have {descriptor.n_features} entries, "
                             f"got shape {self.scale.shape}")
        self.cutoff = descriptor.cutoff

    @property
    def n_features(self):
        return self.descriptor.n_features

    def compute(self, atoms, neighbor_list, gradients=False):
        env = self.descriptor.compute(atoms, neighbor_list, gradients=gradients)
        env.features = env.features * self.scale
        if env.pair_gradients is not None:
            env.pair_gradients = env.pair_gradients * self.scale
        return env

    def forward(self, atoms, neighbor_list, reuse=None):
        env, state = self.descriptor.forward(atoms, neighbor_list, reuse)
        env.features = env.features * self.scale
        return env, state

    def backward_from(self, state, d_energy_d_features):
        return self.descriptor.backward_from(state, d_energy_d_features * self.scale)

    def backward(self, atoms, neighbor_list, d_energy_d_features):
        return self.descriptor.backward(atoms, neighbor_list, d_energy_d_features * self.scale)


def atomic_number(species, what):
    """Atomic number of a chemical symbol or a positive integer; ValueError naming ``what``
    (the setting, e.g. "SOAP species") for anything else."""
    if isinstance(species, str):
        if species not in ATOMIC_NUMBERS or species == "X":
            raise ValueError(f"{what}: unknown chemical symbol {species!r}")
        return ATOMIC_NUMBERS[species]
    number = int(species)
    if number != species or not 1 <= number < len(CHEMICAL_SYMBOLS):
        raise ValueError(f"{what}: {species!r} is not an atomic number")
    return number


class AtomCentredDescriptor(Descriptor):
    """One environment per atom, whose channel is the centre's species: the species list,
    its validation and the pairs a kernel needs, shared by SOAP and ACSF.

    Subclasses call ``set_species`` in ``__init__`` and take their kernel inputs from
    ``centred_pairs``. ``label`` names the descriptor in error messages.
    """

    label = "descriptor"

    def set_species(self, species):
        """``species`` (sorted int64 atomic numbers) and the table from atomic number to its
        index (-1 for species the descriptor does not know)."""
        numbers = sorted({atomic_number(s, f"{self.label} species") for s in species})
        if not numbers:
            raise ValueError(f"{self.label}: species is empty")
        self.species = np.array(numbers, dtype=np.int64)
        self.species_index = np.full(len(CHEMICAL_SYMBOLS), -1, dtype=np.int64)
        self.species_index[self.species] = np.arange(len(self.species))

    def centred_pairs(self, atoms, neighbor_list, inside):
        """Kernel inputs of the pairs ``inside`` (a mask of the neighbour list's pairs):
        (centers, neighbors, vectors Å, CSR offsets over centres, neighbour species index,
        centre species index), contiguous arrays, after checking that every species is known
        and that the neighbour list belongs to ``atoms`` and is sorted by centre."""
        numbers = np.asarray(atoms.numbers, dtype=np.int64)
        centre_species = self.species_index[numbers]
        if (centre_species < 0).any():
            name = atoms.get_chemical_formula()
            unknown = sorted({CHEMICAL_SYMBOLS[z] for z in numbers[centre_species < 0]})
            known = [CHEMICAL_SYMBOLS[z] for z in self.species]
            raise ValueError(f"{self.label} on {name}: species {', '.join(unknown)} not among "
                             f"the descriptor's species {known}")
        if neighbor_list.n_atoms != len(atoms):
            raise ValueError(f"{self.label} on {atoms.get_chemical_formula()}: neighbour list has "
                             f"{neighbor_list.n_atoms} atoms, structure has {len(atoms)}")
        centers = neighbor_list.centers
        if not np.all(inside):
            centers = centers[inside]
        if len(centers) > 1 and (np.diff(centers) < 0).any():
            raise ValueError(f"{self.label} on {atoms.get_chemical_formula()}: "
                             "neighbour list is not sorted by centre")
        neighbors = neighbor_list.neighbors if np.all(inside) else neighbor_list.neighbors[inside]
        vectors = neighbor_list.vectors if np.all(inside) else neighbor_list.vectors[inside]
        offsets = np.zeros(len(atoms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(centers, minlength=len(atoms)), out=offsets[1:])
        return (np.ascontiguousarray(centers, dtype=np.int64),
                np.ascontiguousarray(neighbors, dtype=np.int64),
                np.ascontiguousarray(vectors, dtype=np.float64),
                offsets, np.ascontiguousarray(centre_species[neighbors]), centre_species)
