"""Between gapfit's fitted terms and gap_fit XML records (``gapfit.model.quip_xml``).

``fitted_terms_from_record`` turns each ``<gpCoordinates>`` of a gap_fit model into one
fitted QUIP term (``gapfit.model.quip_terms``) with the file's sparse points, coefficients,
δ, μ, θ/ζ and per-point cutoffs; ``record_from_model`` turns a fitted model whose terms are
QUIP-representable (the QUIP terms, and gapfit's ``TwoBody``, which is distance_2b with
ard_se) into a record, one coordinate per term and channel. Anything else is refused with
a one-line error naming the construct, the file or the term.
"""
import numpy as np

from .quip_terms import QuipAngle3b, QuipDistance2b, QuipSOAP, QuipTerm
from .quip_xml import GAP_VERSION, QuipCoordinate, QuipModel, QuipModelError
from .terms import TwoBody

#: gap_version from which quippy uses the current SOAP conventions
SOAP_MIN_GAP_VERSION = 1423143769

# descriptor-string keys that only gap_fit reads (they change nothing in a fitted model)
_FIT_KEYS = {"delta", "zeta", "covariance_type", "n_sparse", "sparse_method", "theta_uniform",
             "theta_fac", "theta_file", "f0", "sparse_file", "print_sparse_index",
             "unique_hash_tolerance", "unique_descriptor_tolerance", "add_species",
             "config_type_n_sparse", "mark_sparse_atoms", "lengthscale_uniform",
             "lengthscale_factor", "lengthscale_file", "sparse_jitter", "xml_version"}
_DESCRIPTOR_KEYS = {
    "soap": {"cutoff", "cutoff_transition_width", "n_max", "l_max", "atom_sigma",
             "central_weight", "covariance_sigma0", "normalise", "normalize",
             "central_reference_all_species", "basis_error_exponent", "n_species", "species_Z",
             "Z", "n_Z", "radial_basis"},
    "distance_2b": {"cutoff", "cutoff_transition_width", "Z1", "Z2"},
    "angle_3b": {"cutoff", "cutoff_transition_width", "Z", "Z1", "Z2"},
}


def _true(text):
    return str(text).strip().lower() in ("t", "true", "1", ".true.")


def _numbers(text):
    return [int(float(v)) for v in str(text).split()]


def _term_of_coordinate(coordinate, path, gap_version):
    name, settings = coordinate.name, coordinate.settings
    where = f"{path}: coordinate {coordinate.label} ({name})"
    for key, value in settings.items():
        if key not in _DESCRIPTOR_KEYS[name] and key not in _FIT_KEYS:
            raise QuipModelError(f"{where}: descriptor option {key}={value} is not supported")
    kernel = dict(covariance_type=coordinate.covariance_type, delta=coordinate.signal_variance,
                  signal_mean=coordinate.signal_mean)
    if coordinate.covariance_type == "dot_product":
        kernel["zeta"] = coordinate.zeta
    else:
        kernel["theta"] = [float(v) for v in coordinate.theta]

    def get(key, default):
        return float(settings[key]) if key in settings else default

    width = get("cutoff_transition_width", 0.5)
    if "cutoff" not in settings:
        raise QuipModelError(f"{where}: descriptor has no cutoff")
    if name == "soap":
        if gap_version < SOAP_MIN_GAP_VERSION:
            raise QuipModelError(f"{where}: gap_version {gap_version} < {SOAP_MIN_GAP_VERSION} "
                                 "selects QUIP's older SOAP conventions, which are not supported")
        basis = settings.get("radial_basis", "EQUISPACED_GAUSS").upper()
        if basis != "EQUISPACED_GAUSS":
            raise QuipModelError(f"{where}: radial_basis={basis} is not supported "
                                 "(only EQUISPACED_GAUSS)")
        if "species_Z" not in settings:
            raise QuipModelError(f"{where}: SOAP without species_Z (QUIP's species wild card) "
                                 "is not supported")
        centres = _numbers(settings.get("Z", "0"))
        if len(centres) != 1:
            raise QuipModelError(f"{where}: several centre species Z={settings['Z']} in one "
                                 "coordinate are not supported")
        normalise = settings.get("normalise", settings.get("normalize", "T"))
        term = QuipSOAP(
            cutoff=get("cutoff", None), cutoff_transition_width=width,
            n_max=int(get("n_max", 0)), l_max=int(get("l_max", 0)),
            atom_sigma=get("atom_sigma", None), central_weight=get("central_weight", 1.0),
            covariance_sigma0=get("covariance_sigma0", 0.0), normalise=_true(normalise),
            central_reference_all_species=_true(settings.get("central_reference_all_species",
                                                             "F")),
            basis_error_exponent=get("basis_error_exponent", 10.0),
            species_Z=_numbers(settings["species_Z"]), Z=centres[0], n_sparse=coordinate.n_sparse,
            **kernel)
    elif name == "distance_2b":
        term = QuipDistance2b(cutoff=get("cutoff", None), cutoff_transition_width=width,
                              Z1=int(get("Z1", 0)), Z2=int(get("Z2", 0)),
                              n_sparse=coordinate.n_sparse, **kernel)
    else:
        term = QuipAngle3b(cutoff=get("cutoff", None), cutoff_transition_width=width,
                           Z=int(get("Z", 0)), Z1=int(get("Z1", 0)), Z2=int(get("Z2", 0)),
                           n_sparse=coordinate.n_sparse, **kernel)
    return term


def _species_of(terms, e0):
    found = set()
    for term in terms:
        for key in ("species_Z", "Z", "Z1", "Z2"):
            value = getattr(term, key, None)
            values = value if isinstance(value, (list, tuple)) else [value]
            found.update(int(v) for v in values if v)
    return sorted(found)


def fitted_terms_from_record(record, path):
    """(unfitted terms, fitted terms, alpha (M,), species, e0 {Z: eV}) of a QuipModel.

    Raises QuipModelError (one line, naming ``path`` and the construct) for what gapfit does
    not represent."""
    terms = [_term_of_coordinate(c, path, record.gap_version) for c in record.coordinates]
    if not terms:
        raise QuipModelError(f"{path}: the model has no <gpCoordinates>")
    species = _species_of(terms, record.e0)
    if not species:
        raise QuipModelError(f"{path}: no species named by the descriptors (only wild cards)")
    fitted = []
    for term, coordinate in zip(terms, record.coordinates):
        where = f"{path}: coordinate {coordinate.label}"
        from sklearn.base import clone
        try:
            built = clone(term).build(species)
        except ValueError as error:
            raise QuipModelError(f"{where}: {error}") from None
        if built.descriptor_.n_features != coordinate.dimensions:
            raise QuipModelError(f"{where}: descriptor has {built.descriptor_.n_features} "
                                 f"dimensions, the file {coordinate.dimensions}")
        labels = list(built.channel_descriptors_)
        channel = labels[0] if labels[0] is not None else int(term.Z or 0)
        raw = np.asarray(coordinate.sparse_points, dtype=np.float64)
        internal = raw if built.feature_scale_ is None else raw * built.feature_scale_
        built.set_sparse(internal, np.full(len(raw), channel, dtype=np.int64))
        if built.folded_:
            expected = built.point_cutoffs(raw)
            if not np.allclose(coordinate.sparse_cutoff, expected, rtol=0, atol=1e-12):
                raise QuipModelError(f"{where}: sparseCutoff values differ from the cosine "
                                     "cutoff of the sparse distances; not supported")
        built.restore_state({"sparse_raw": raw, "sparse_cutoffs": coordinate.sparse_cutoff})
        fitted.append(built)
    alpha = np.concatenate([np.asarray(c.alpha, dtype=np.float64) for c in record.coordinates])
    e0 = {z: float(record.e0.get(z, 0.0)) for z in species}
    return terms, fitted, alpha, species, e0


def _two_body_coordinates(term):
    """distance_2b coordinates of a fitted gapfit ``TwoBody`` (the same kernel)."""
    from ..descriptors.numerics import cosine_cutoff
    for channel, (start, stop) in term.channel_columns_.items():
        z1, z2 = divmod(int(channel), 1000)
        points = term.sparse_points_[start:stop]
        cutoffs, _ = cosine_cutoff(points[:, 0], float(term.cutoff), float(term.transition_width))
        descriptor = (f"distance_2b cutoff={float(term.cutoff)!r} cutoff_transition_width="
                      f"{float(term.transition_width)!r} Z1={z1} Z2={z2}")
        yield (start, stop, descriptor, "ard_se", None, np.array([float(term.theta)]), 0.0,
               points, cutoffs, [0])


def _quip_coordinates(term):
    kind, zeta, theta = term.coordinate_kernel()
    permutation = list(range(3)) if isinstance(term, QuipAngle3b) else [0]
    for channel, (start, stop) in term.channel_columns_.items():
        yield (start, stop, term.coordinate_descriptor(channel), kind, zeta, theta,
               float(term.signal_mean), term.sparse_raw_[start:stop],
               term.sparse_cutoffs_[start:stop], permutation)


def record_from_model(model, label="GAP_gapfit"):
    """A QuipModel of a fitted gapfit model; ValueError naming the first term that gap_fit's
    format cannot hold."""
    coordinates = []
    offset = 0
    for index, term in enumerate(model.terms_):
        if isinstance(term, QuipTerm):
            pieces = _quip_coordinates(term)
        elif type(term) is TwoBody:
            pieces = _two_body_coordinates(term)
        else:
            raise ValueError(f"term {index} ({type(term).__name__}) cannot be written as a "
                             "gap_fit XML model; use QuipSOAP, QuipDistance2b, QuipAngle3b or "
                             "TwoBody")
        for start, stop, descriptor, kind, zeta, theta, mean, points, cutoffs, perm in pieces:
            coordinates.append(QuipCoordinate(
                label=f"{label}{len(coordinates) + 1}", descriptor=descriptor,
                name=descriptor.split()[0], settings={}, covariance_type=kind,
                signal_variance=float(term.delta_), signal_mean=mean, zeta=zeta, theta=theta,
                sparse_points=np.asarray(points, dtype=np.float64),
                alpha=np.asarray(model.alpha_[offset + start: offset + stop], dtype=np.float64),
                sparse_cutoff=np.asarray(cutoffs, dtype=np.float64),
                permutations=np.array([perm], dtype=np.int64)))
        offset += term.n_sparse_points
    return QuipModel(label=label, gap_version=getattr(model, "quip_gap_version_", GAP_VERSION),
                     e0={int(z): float(v) for z, v in model.e0_.items()},
                     coordinates=coordinates, command_line=getattr(model, "quip_command_line_",
                                                                   None))
