"""Energy, local energies, forces and virial of one structure from fitted terms: the MD path.

Per term, the local energy E_i = Σ_m α_m δ² k(q_i, s_m) and its gradient ∂E/∂q_i are
computed for all environments at once (the sparse-point side, α δ² and the sparse points
as the kernel stores them, is prepared once per model); the descriptor's vector-Jacobian
product turns ∂E/∂q into ∂E/∂(pair vector), which is scattered into forces and the
virial. ``StructurePredictor`` keeps those constants and, for MD, a neighbour list with
a skin (``gapfit.structures.neighbors.SkinNeighborList``) that is reused while atoms move little.
On request the same pass also writes the local-energy design rows δ² Σ_e k(q_e, s_m) per
atom (the kernel values it contracts anyway), for ``gapfit.uncertainty.local``.
"""
from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np

from . import _kernels as kernels
from ..descriptors.numerics import cosine_cutoff
from ..gp.kernels import CutoffSquaredExponential, NormalizedDotProduct
from ..gp.quip_kernels import QuipDotProduct
from ..fit.threads import single_thread
from ..structures.neighbors import SkinNeighborList, build_neighbor_list, within

# environments handled at once by the dot-product kernel: bounds the (block, M) scratch
ENV_BLOCK = 2048
# the empty rows array: kernels.dot_product_energies then writes no design rows
NO_ROWS = np.empty((0, 0))
# structures smaller than this run on one thread (see ``_threads_for``)
PARALLEL_MIN_ATOMS = 64
# atoms closer than this (Å) are reported as overlapping, as ``checks.check_structures`` does
MIN_DISTANCE = 0.5


@dataclass
class Prediction:
    """Model output for one structure: eV, eV/Å, eV (virial, 3×3).

    ``environments`` holds each term's LocalEnvironments (without gradients) and
    ``neighbor_list`` the NeighborList (model cutoff) when the prediction was asked for
    local-energy rows, else None.
    """

    local_energies: np.ndarray
    forces: np.ndarray
    virial: np.ndarray
    contact: object = None  # ``baselines.Contact`` closer than the training data, if checked
    environments: list = None
    neighbor_list: object = None

    @property
    def energy(self):
        return float(self.local_energies.sum())


def _is_integer(value):
    return float(value).is_integer() and value >= 1


class _ChannelModel:
    """One channel of one term: its sparse points (as the kernel stores them), α δ² c (eV)
    and the constant μ² Σ α c (eV) every environment gets (c: the term's sparse weights,
    μ²: its kernel offset; 1 and 0 for gapfit's own terms)."""

    def __init__(self, channel, sparse_points, coefficients, columns=None, constant=0.0):
        self.channel = channel
        self.columns = columns  # slice of the term's columns (sparse points) of this channel
        self.sparse_points = np.ascontiguousarray(sparse_points, dtype=np.float64)
        self.coefficients = np.ascontiguousarray(coefficients, dtype=np.float64)
        self.constant = float(constant)


class TermPredictor:
    """Local energies and ∂E/∂q of the environments of one fitted term.

    ``alpha`` holds this term's coefficients (one per sparse point). The dot-product
    kernel with an integer ζ and the 2-body cutoff squared exponential have dedicated
    numba contractions; any other kernel goes through its ``values_and_factors``.
    """

    def __init__(self, term, alpha):
        self.term = term
        self.descriptor = term.descriptor_
        self.cutoff = term.neighbor_cutoff
        self.kernel = term.kernel_
        # the descriptor's forward state of the last call, whose buffers the next refills
        self._forward_state = None
        # (ENV_BLOCK, M) work array of the dot-product contraction, kept between calls: a
        # fresh one costs a page fault per 4 kB, ~2 µs per atom at 1,000 sparse points
        self._projections = np.empty((0, 0))
        scale = term.delta_ ** 2
        weights = term.sparse_weights() if hasattr(term, "sparse_weights") else None
        weighted_alpha = np.asarray(alpha, dtype=np.float64)
        if weights is not None:
            weighted_alpha = weighted_alpha * weights
        offset = term.kernel_offset() if hasattr(term, "kernel_offset") else 0.0
        self.channels = [
            _ChannelModel(channel, term.sparse_points_[start:stop],
                          scale * weighted_alpha[start:stop], slice(start, stop),
                          offset * weighted_alpha[start:stop].sum())
            for channel, (start, stop) in term.channel_columns_.items()]
        self.scale = scale
        kernel = self.kernel
        if any(part.constant for part in self.channels):
            self._contract = self._generic
        elif isinstance(kernel, NormalizedDotProduct) and _is_integer(kernel.zeta):
            self._contract = self._dot_product
        elif isinstance(kernel, QuipDotProduct) and _is_integer(kernel.zeta):
            self._contract = self._plain_dot_product
        elif isinstance(kernel, CutoffSquaredExponential) and self.descriptor.n_features == 1:
            for part in self.channels:
                cutoff_values, _ = cosine_cutoff(part.sparse_points[:, 0], kernel.cutoff,
                                                 kernel.transition_width)
                part.pair_weights = np.ascontiguousarray(part.coefficients * cutoff_values)
                part.row_weights = np.ascontiguousarray(scale * cutoff_values)
                part.sparse_distances = np.ascontiguousarray(part.sparse_points[:, 0])
            self._contract = self._pair_distance
        else:
            self._contract = self._generic

    def energies_and_gradients(self, environments, local_rows=None):
        """(env_energies (n_envs,) eV, ∂E/∂q (n_envs, n_features) eV per feature unit).
        Environments of channels without sparse points contribute nothing.

        local_rows : None or (n_atoms, n_sparse_points) array; δ² k(q_e, s_m) of every
        environment is added to the row of its centre atom (eV per unit coefficient).
        """
        features = environments.features
        energies = np.zeros(len(features))
        gradients = np.zeros_like(features)
        for part in self.channels:
            members = environments.channels == part.channel
            if members.all():
                envs = slice(None)
            else:
                envs = np.flatnonzero(members)
                if len(envs) == 0:
                    continue
            rows = None
            if local_rows is not None:
                rows = (local_rows[:, part.columns],
                        np.ascontiguousarray(environments.center_atoms[envs]))
            energies[envs], gradients[envs] = self._contract(part, features[envs], rows)
        return energies, gradients

    def _dot_product(self, part, features, rows=None):
        zeta = int(self.kernel.zeta)
        energies = np.empty(len(features))
        gradients = np.empty_like(features)
        for first in range(0, len(features), ENV_BLOCK):
            block = slice(first, first + ENV_BLOCK)
            values = features[block]
            norms = np.sqrt(np.einsum("ij,ij->i", values, values))
            weights = self._projection_buffer(len(values), len(part.sparse_points))
            np.matmul(values, part.sparse_points.T, out=weights)
            if rows is None:
                kernels.dot_product_energies(weights, norms, part.coefficients, zeta,
                                             energies[block], NO_ROWS, 0.0)
            else:
                centres = rows[1][block]
                in_order = (len(centres) > 0 and centres[0] + len(centres) - 1 == centres[-1]
                            and np.all(np.diff(centres) == 1))
                # environments of consecutive atoms write their rows in place (the usual case;
                # the rows of a channel's columns are still zero then)
                block_rows = (rows[0][centres[0]: centres[-1] + 1] if in_order
                              else np.empty_like(weights))
                kernels.dot_product_energies(weights, norms, part.coefficients, zeta,
                                             energies[block], block_rows, self.scale)
                if not in_order:
                    _add_by_atom(rows[0], centres, block_rows)
            safe = np.where(norms > 0.0, norms, 1.0)
            np.matmul(weights, part.sparse_points, out=gradients[block])
            gradients[block] -= (zeta * energies[block] / safe ** 2)[:, None] * values
        return energies, gradients

    def _projection_buffer(self, n_rows, n_sparse):
        """A C-contiguous (n_rows, n_sparse) view of the kept work array, grown as needed."""
        size = n_rows * n_sparse
        if self._projections.size < size:
            self._projections = np.empty((max(n_rows, min(ENV_BLOCK, 2 * n_rows)), n_sparse))
        return self._projections.reshape(-1)[:size].reshape(n_rows, n_sparse)

    def _plain_dot_product(self, part, features, rows=None):
        """(q · s)^ζ without normalisation (QUIP's dot_product on SOAP vectors as given)."""
        _no_local_rows(rows, "QUIP's dot_product kernel")
        zeta = int(self.kernel.zeta)
        energies = np.empty(len(features))
        gradients = np.empty_like(features)
        for first in range(0, len(features), ENV_BLOCK):
            block = slice(first, first + ENV_BLOCK)
            weights = features[block] @ part.sparse_points.T
            kernels.dot_product_energies(weights, np.ones(len(weights)), part.coefficients, zeta,
                                         energies[block], NO_ROWS, 0.0)
            np.matmul(weights, part.sparse_points, out=gradients[block])
        return energies, gradients

    def _pair_distance(self, part, features, rows=None):
        distances = np.ascontiguousarray(features[:, 0])
        energies = np.empty(len(distances))
        slopes = np.empty(len(distances))
        kernel = self.kernel
        kernels.cutoff_squared_exponential_energies(
            distances, part.sparse_distances, part.pair_weights, float(kernel.theta),
            float(kernel.cutoff), float(kernel.transition_width), energies, slopes)
        if rows is not None:
            kernels.add_cutoff_squared_exponential_rows(
                distances, part.sparse_distances, part.row_weights, float(kernel.theta),
                float(kernel.cutoff), float(kernel.transition_width), rows[1], rows[0])
        return energies, slopes[:, None]

    def _generic(self, part, features, rows=None):
        values, factor_sparse, factor_self = self.kernel.values_and_factors(features,
                                                                            part.sparse_points)
        coefficients = part.coefficients
        gradients = ((factor_sparse * coefficients) @ part.sparse_points
                     + (factor_self @ coefficients)[:, None] * features)
        if rows is not None:
            if part.constant or self.term.sparse_weights() is not None:
                _no_local_rows(rows, "a kernel with sparse-point cutoffs or a signal mean")
            _add_by_atom(rows[0], rows[1], self.scale * values)
        return values @ coefficients + part.constant, gradients

    def add_to(self, atoms, neighbor_list, local_energies, forces, virial, local_rows=None):
        """Add this term's local energies (eV), forces (eV/Å) and virial (eV, 3×3, not yet
        symmetrised) for ``atoms`` with a neighbour list covering ``self.cutoff``; with
        ``local_rows`` (n_atoms, n_sparse_points) also its local-energy design rows
        (``energies_and_gradients``). Returns the LocalEnvironments (no gradients)."""
        nl = within(neighbor_list, self.cutoff)
        if local_rows is None and self._contract == self._pair_distance and hasattr(
                self.descriptor, "unordered_pairs"):
            self._add_unordered_pairs(atoms, nl, local_energies, forces, virial)
            return None
        if not getattr(self.descriptor, "weighted", False):
            environments, state = self.descriptor.forward(atoms, nl, self._forward_state)
            self._forward_state = state
            env_energies, d_energy_d_features = self.energies_and_gradients(environments,
                                                                            local_rows)
            kernels.add_local_energies(environments.center_atoms, env_energies, local_energies)
            pair_envs, pair_neighbors, pair_vectors, gradient = self.descriptor.backward_from(
                state, d_energy_d_features)
        else:
            environments = self.descriptor.compute(atoms, nl, gradients=False)
            weights = getattr(environments, "covariance_cutoff", None)
            if weights is None:
                env_energies, d_energy_d_features = self.energies_and_gradients(environments,
                                                                                local_rows)
                kernels.add_local_energies(environments.center_atoms, env_energies,
                                           local_energies)
                pair_envs, pair_neighbors, pair_vectors, gradient = self.descriptor.backward(
                    atoms, nl, d_energy_d_features)
            else:  # QUIP's covariance cutoff f_e weighs the environment: E_e = f_e u_e
                _no_local_rows(local_rows, "QUIP's covariance cutoffs (distance_2b, angle_3b)")
                env_energies, d_energy_d_features = self.energies_and_gradients(environments)
                kernels.add_local_energies(environments.center_atoms, weights * env_energies,
                                           local_energies)
                pair_envs, pair_neighbors, pair_vectors, gradient = self.descriptor.backward(
                    atoms, nl, weights[:, None] * d_energy_d_features,
                    d_energy_d_cutoff=env_energies)
        centers = np.ascontiguousarray(environments.center_atoms[pair_envs])
        kernels.add_forces_and_virial(centers, np.ascontiguousarray(pair_neighbors),
                                      np.ascontiguousarray(pair_vectors, dtype=np.float64),
                                      np.ascontiguousarray(gradient, dtype=np.float64),
                                      forces, virial)
        return environments

    def _add_unordered_pairs(self, atoms, neighbor_list, local_energies, forces, virial):
        """``add_to`` for a pair term: each pair's energy u(r) (eV) is evaluated once and
        credited to both atoms (the full list's two environments of the pair have the same
        distance), its gradient counted twice: the same energies, forces and virial as the
        environment-by-environment route, at half the kernel evaluations."""
        centers, neighbors, vectors, distances, channels = self.descriptor.unordered_pairs(
            atoms, neighbor_list)
        for part in self.channels:
            members = np.flatnonzero(channels == part.channel)
            if len(members) == 0:
                continue
            energies, slopes = self._pair_distance(part, distances[members, None])
            centre_atoms = np.ascontiguousarray(centers[members])
            neighbour_atoms = np.ascontiguousarray(neighbors[members])
            kernels.add_local_energies(centre_atoms, energies, local_energies)
            kernels.add_local_energies(neighbour_atoms, energies, local_energies)
            pair_vectors = np.ascontiguousarray(vectors[members])
            gradient = (2.0 * slopes[:, 0] / distances[members])[:, None] * pair_vectors
            kernels.add_forces_and_virial(centre_atoms, neighbour_atoms, pair_vectors,
                                          gradient, forces, virial)


def _no_local_rows(rows, what):
    """ValueError when local-energy rows (``uncertainty="local"``) are asked of a term whose
    local energies are not a plain kernel sum (not implemented for it)."""
    if rows is not None:
        raise ValueError(f"uncertainty='local' is not available for terms with {what}; "
                         "use uncertainty=True")


def _add_by_atom(atom_rows, centres, env_rows):
    """atom_rows[centres[e]] += env_rows[e] for every environment e (repeated centres add)."""
    if len(centres) == 0:
        return
    if np.bincount(centres).max() == 1:
        atom_rows[centres] += env_rows
        return
    order = np.argsort(centres, kind="stable")
    sorted_centres = centres[order]
    starts = np.flatnonzero(np.r_[True, sorted_centres[1:] != sorted_centres[:-1]])
    atom_rows[sorted_centres[starts]] += np.add.reduceat(env_rows[order], starts, axis=0)


class StructurePredictor:
    """Predictions of single structures for fixed terms and coefficients.

    terms : fitted terms (``GAP.terms_``); alpha : (M_total,) coefficients;
    e0 : {atomic number: isolated-atom energy eV} or None (then pass e0_per_atom).
    skin : Å, or None. With a skin, one ``SkinNeighborList`` is kept and reused across
        calls (MD); without, every call searches its neighbours afresh.
    baseline : a fitted fixed baseline added to the terms (``gapfit.baselines.ZBL``) or None.
    contacts : a ``gapfit.baselines.ContactCheck`` or None; with one, each Prediction's
        ``contact`` names the pair most closer than the training data (or is None).
    """

    def __init__(self, terms, alpha, e0=None, skin=None, baseline=None, contacts=None):
        self.terms = terms
        self.alpha = alpha
        self.e0 = e0
        self.skin = skin
        self.baseline = baseline
        self.contacts = contacts
        self._deltas = [term.delta_ for term in terms]
        self._e0_by_number = np.zeros(119)
        for number, energy in (e0 or {}).items():
            self._e0_by_number[int(number)] = energy
        sizes = [term.n_sparse_points for term in terms]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.column_offsets = offsets
        self.term_predictors = [TermPredictor(term, alpha[start:stop])
                                for term, start, stop in zip(terms, offsets[:-1], offsets[1:])]
        self.cutoff = max([term.neighbor_cutoff for term in terms]
                          + ([baseline.cutoff] if baseline is not None else [])
                          + ([max(contacts.shortest.values())] if contacts is not None else []))
        self.neighbor_list = SkinNeighborList(self.cutoff, skin) if skin is not None else None

    @classmethod
    def from_model(cls, model, skin=None):
        shortest = getattr(model, "shortest_distances_", None)
        contacts = None
        if shortest:
            from ..fit.baselines import ContactCheck
            contacts = ContactCheck(shortest)
        return cls(model.terms_, model.alpha_, model.e0_, skin,
                   baseline=getattr(model, "repulsion_", None), contacts=contacts)

    def is_current(self, model):
        """True while ``model`` still holds the terms, coefficients and deltas used here."""
        return (getattr(model, "alpha_", None) is self.alpha
                and getattr(model, "terms_", None) is self.terms
                and getattr(model, "repulsion_", None) is self.baseline
                and [term.delta_ for term in self.terms] == self._deltas)

    def _neighbors(self, atoms):
        if self.neighbor_list is not None:
            return self.neighbor_list.get(atoms)
        return build_neighbor_list(atoms, self.cutoff)

    def predict(self, atoms, e0_per_atom=None, local_rows=None):
        """Prediction (local energies eV, forces eV/Å, virial eV) of ``atoms``.

        local_rows : None, or a zeroed (n_atoms, M_total) array that receives the
        local-energy design rows a_i[m] = δ² Σ_{e of atom i} k(q_e, s_m) (eV, columns
        as in ``alpha``); the Prediction then holds each term's environments and the
        neighbour list.
        Raises ValueError (from ``checks.check_structures``) when two atoms are closer
        than MIN_DISTANCE Å.
        """
        if e0_per_atom is None:
            e0_per_atom = self._e0_by_number[atoms.numbers]
        neighbor_list = self._neighbors(atoms)
        if neighbor_list.distances.size and neighbor_list.distances.min() < MIN_DISTANCE:
            from ..structures.checks import check_structures
            check_structures([atoms], min_distance=MIN_DISTANCE)
        n_atoms = len(atoms)
        local_energies = np.array(e0_per_atom, dtype=np.float64)
        forces = np.zeros((n_atoms, 3))
        virial = np.zeros((3, 3))
        environments = []
        offsets = self.column_offsets
        with _threads_for(n_atoms):
            for index, term_predictor in enumerate(self.term_predictors):
                rows = (None if local_rows is None
                        else local_rows[:, offsets[index]: offsets[index + 1]])
                environments.append(term_predictor.add_to(atoms, neighbor_list, local_energies,
                                                          forces, virial, rows))
            if self.baseline is not None:
                self.baseline.add_to(atoms, neighbor_list, local_energies, forces, virial)
        prediction = Prediction(local_energies, forces, 0.5 * (virial + virial.T))
        if local_rows is not None:
            prediction.environments, prediction.neighbor_list = environments, neighbor_list
        if self.contacts is not None:
            prediction.contact = self.contacts.closest_below(atoms, neighbor_list)
        return prediction


@contextmanager
def _threads_for(n_atoms):
    """One thread (numba and BLAS) for structures too small to share out: waking a
    second thread costs more than it saves there, and far more on a busy machine."""
    if n_atoms >= PARALLEL_MIN_ATOMS or numba.get_num_threads() == 1:
        yield
        return
    with single_thread():
        yield


def predict_structure(terms, alpha, e0_per_atom, atoms, baseline=None):
    """Local energies, forces and virial of ``atoms`` for coefficients ``alpha``.

    e0_per_atom : (n_atoms,) isolated-atom energies in eV; baseline : see StructurePredictor.
    """
    return StructurePredictor(terms, alpha, baseline=baseline).predict(atoms, e0_per_atom)
