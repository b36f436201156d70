"""Behler–Parrinello atom-centred symmetry functions (G1–G5) computed in numba.

Features equal ``dscribe.descriptors.ACSF`` (dscribe 2.1); analytic pair gradients and
a vector-Jacobian product (for forces in MD) come with them.
"""
import numpy as np

from . import _acsf_kernels as kernels
from .base import AtomCentredDescriptor, LocalEnvironments

N_DEFAULT_G2 = 8


def default_g2_params(r_cut, n=N_DEFAULT_G2):
    """Shifted Gaussians tiling (0, r_cut): R_s = k r_cut / (n + 1) for k = 1..n (Å),
    each of width sigma = r_cut / (n + 1), i.e. eta = 1 / (2 sigma^2) (Å^-2), so that
    neighbouring Gaussians overlap at about one standard deviation."""
    spacing = r_cut / (n + 1)
    shifts = spacing * np.arange(1, n + 1)
    return np.column_stack([np.full(n, 0.5 / spacing ** 2), shifts])


def default_angular_params(r_cut):
    """(eta, zeta, lambda) for G4 and G5: eta = 1 / (2 sigma^2) with sigma = r_cut and
    r_cut / 2 (a broad and a narrower radial weight, Å^-2), zeta in {1, 4} (broad and
    sharp in angle), lambda = ±1 (peaks at 0° and 180°): eight functions."""
    rows = [(0.5 / sigma ** 2, zeta, lam)
            for sigma in (r_cut, 0.5 * r_cut) for zeta in (1.0, 4.0) for lam in (1.0, -1.0)]
    return np.array(rows)


def _as_table(params, columns, name):
    """``params`` as a float (n, columns) array; an empty list gives (0, columns)."""
    table = np.array(params, dtype=np.float64)
    if table.size == 0:
        return np.zeros((0, columns))
    if table.ndim != 2 or table.shape[1] != columns:
        raise ValueError(f"ACSF {name}: expected rows of {columns} numbers, got shape "
                         f"{table.shape}")
    if not np.isfinite(table).all():
        raise ValueError(f"ACSF {name}: parameters must be finite")
    return table


def _validated_angular(params, name):
    """Checked (eta, zeta, lambda) rows: eta >= 0, zeta >= 1, |lambda| <= 1."""
    table = _as_table(params, 3, name)
    for eta, zeta, lam in table:
        if eta < 0:
            raise ValueError(f"ACSF {name}: eta must be >= 0 Å^-2, got {eta}")
        if zeta < 1:
            raise ValueError(f"ACSF {name}: zeta must be >= 1 (finite gradients), got {zeta}")
        if abs(lam) > 1:
            raise ValueError(f"ACSF {name}: lambda must lie in [-1, 1], got {lam}")
    return table


class ACSFDescriptor(AtomCentredDescriptor):
    """Atom-centred symmetry functions (Behler 2011) with dscribe 2.1's definitions.

    Parameters
    ----------
    species : list of chemical symbols or atomic numbers that may ever occur.
    r_cut : float, cutoff radius in Å of the cosine cutoff f(r) = (cos(pi r / r_cut) + 1) / 2.
    g2_params : (n, 2) rows (eta in Å^-2, R_s in Å) of G2 = sum_j exp(-eta (r_ij - R_s)^2)
        f(r_ij); None gives ``default_g2_params(r_cut)`` (8 shifted Gaussians), [] none.
    g4_params : (n, 3) rows (eta in Å^-2, zeta >= 1, |lambda| <= 1) of
        G4 = sum_{j<k} 2^(1-zeta) (1 + lambda cos t_ijk)^zeta exp(-eta (r_ij^2 + r_ik^2 +
        r_jk^2)) f(r_ij) f(r_ik) f(r_jk); None gives ``default_angular_params(r_cut)``, [] none.
    g5_params : as g4_params for G5, the same without the r_jk Gaussian and cutoff.
    g3_params : (n,) kappa in Å^-1 of G3 = sum_j cos(kappa r_ij) f(r_ij); none by default.

    Attributes
    ----------
    species : (n_species,) int64, sorted atomic numbers.
    cutoff : float, neighbour-list radius in Å (= r_cut).
    n_features : int, (1 + n_g2 + n_g3) n_species + (n_g4 + n_g5) n_species (n_species + 1) / 2.

    The feature row of a centre holds, for each neighbour species s in order, G1 (the
    always-present cutoff sum), the G2 and the G3 functions; then for each species pair
    (a >= b, ordered a(a+1)/2 + b, dscribe's order) the G4 and the G5 functions. Features
    are dimensionless; gradients are per Å. Every atom is a centre; the channel of an
    environment is the centre's atomic number (its own species is not in the features).
    """

    label = "ACSF"

    def __init__(self, species, r_cut=5.0, g2_params=None, g4_params=None, g5_params=None,
                 g3_params=()):
        self.set_species(species)
        self.r_cut = float(r_cut)
        if not self.r_cut > 0:
            raise ValueError(f"ACSF: r_cut must be > 0 Å, got {r_cut}")
        self.cutoff = self.r_cut
        self.g2_params = _as_table(default_g2_params(self.r_cut) if g2_params is None
                                   else g2_params, 2, "g2_params")
        if (self.g2_params[:, 0] <= 0).any():
            raise ValueError(f"ACSF g2_params: eta must be > 0 Å^-2, got {self.g2_params[:, 0]}")
        self.g3_params = np.array(g3_params, dtype=np.float64).reshape(-1)
        if not np.isfinite(self.g3_params).all():
            raise ValueError("ACSF g3_params: kappa must be finite")
        default_angular = default_angular_params(self.r_cut)
        self.g4_params = _validated_angular(default_angular if g4_params is None else g4_params,
                                            "g4_params")
        self.g5_params = _validated_angular(default_angular if g5_params is None else g5_params,
                                            "g5_params")
        self._set_up_angular_tables()

    def _set_up_angular_tables(self):
        """Distinct exponents and (zeta, lambda) shapes of the angular functions (G4 then
        G5) and each function's index into them, so a triple computes each once."""
        angular = np.vstack([self.g4_params, self.g5_params])
        self._etas, eta_index = np.unique(angular[:, 0], return_inverse=True)
        shapes, shape_index = np.unique(angular[:, 1:], axis=0, return_inverse=True)
        shapes = shapes.reshape(-1, 2)
        self._shapes = np.ascontiguousarray(
            np.column_stack([shapes, 2.0 ** (1.0 - shapes[:, 0])]))
        self._angular_index = np.ascontiguousarray(
            np.column_stack([eta_index.reshape(-1), shape_index.reshape(-1)]), dtype=np.int64)

    @property
    def n_features(self):
        n_species = len(self.species)
        n_radial = 1 + len(self.g2_params) + len(self.g3_params)
        n_angular = len(self.g4_params) + len(self.g5_params)
        return n_radial * n_species + n_angular * n_species * (n_species + 1) // 2

    def to_dscribe(self, periodic=False):
        """The dscribe ACSF with the same settings (dense output)."""
        from dscribe.descriptors import ACSF

        def listed(table):
            return table.tolist() if len(table) else None

        return ACSF(r_cut=self.r_cut, g2_params=listed(self.g2_params),
                    g3_params=listed(self.g3_params), g4_params=listed(self.g4_params),
                    g5_params=listed(self.g5_params), species=[int(z) for z in self.species],
                    periodic=periodic, sparse=False)

    def _kernel_inputs(self, atoms, neighbor_list):
        """Pairs within r_cut, their CSR offsets and neighbour species indices."""
        inside = (neighbor_list.distances < self.r_cut) & (neighbor_list.distances > 0)
        return self.centred_pairs(atoms, neighbor_list, inside)[:5]

    def _settings(self):
        return (len(self.species), self.r_cut, self.g2_params, self.g3_params, self._etas,
                self._shapes, self._angular_index, len(self.g4_params))

    def compute(self, atoms, neighbor_list, gradients=False):
        """Symmetry functions of every atom of ``atoms`` (one environment per atom).

        ``neighbor_list`` is ``build_neighbor_list(atoms, r)`` with r >= ``self.cutoff``
        (pairs beyond r_cut are dropped). With ``gradients=True`` the pair arrays hold,
        for every (centre, neighbour image) within r_cut, ∂q_centre/∂r_image of shape
        (3, n_features) per Å; an angular term of the triple (i, j', k') adds to the rows
        of both j' and k'.
        """
        centers, neighbors, vectors, offsets, pair_species = self._kernel_inputs(
            atoms, neighbor_list)
        numbers = np.asarray(atoms.numbers, dtype=np.int64)
        environments = dict(center_atoms=np.arange(len(atoms), dtype=np.int64),
                            channels=numbers.copy())
        if not gradients:
            features = kernels.acsf_features(offsets, vectors, pair_species, *self._settings(),
                                             self.n_features)
            return LocalEnvironments(features=features, **environments)
        features, pair_gradients = kernels.acsf_features_and_gradients(
            offsets, vectors, pair_species, *self._settings(), self.n_features)
        return LocalEnvironments(features=features, pair_envs=centers, pair_neighbors=neighbors,
                                 pair_vectors=vectors, pair_gradients=pair_gradients,
                                 **environments)

    def backward(self, atoms, neighbor_list, d_energy_d_features):
        """Vector-Jacobian product for forces without forming the pair gradients.

        d_energy_d_features : (n_atoms, n_features), eV per feature unit.
        Returns (pair_envs, pair_neighbors, pair_vectors, d_energy_d_pair_vectors) with
        d_energy_d_pair_vectors[p] = sum_f ∂E/∂q[e, f] ∂q[e, f]/∂r_image, (n_pairs, 3) in
        eV/Å, for the same pairs (same order) as ``compute(..., gradients=True)``.
        """
        centers, neighbors, vectors, offsets, pair_species = self._kernel_inputs(
            atoms, neighbor_list)
        d_energy_d_features = np.ascontiguousarray(d_energy_d_features, dtype=np.float64)
        expected = (len(atoms), self.n_features)
        if d_energy_d_features.shape != expected:
            raise ValueError(f"ACSF backward on {atoms.get_chemical_formula()}: "
                             f"d_energy_d_features has shape {d_energy_d_features.shape}, "
                             f"expected {expected}")
        d_energy_d_vectors = kernels.acsf_backward(offsets, vectors, pair_species,
                                                   *self._settings(), d_energy_d_features)
        return centers, neighbors, vectors, d_energy_d_vectors
