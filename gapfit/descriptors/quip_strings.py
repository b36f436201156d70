"""Build gapfit's QUIP descriptors from QUIP descriptor strings ("soap cutoff=5 n_max=8 ...").

The strings are those of gap_fit's ``gap={...}`` argument and of the ``<descriptor>``
elements of its XML files. Options that gapfit does not implement, or sets to values
other than QUIP's defaults that were not checked against quippy, are refused with an
error naming the option; GP options (n_sparse, delta, zeta, ...) are ignored here.
"""
import re

from .quip_angle import QuipAngle3bDescriptor
from .quip_pair import QuipDistance2bDescriptor
from .quip_soap import QuipSOAPDescriptor

# Keys of gap_fit's GP part of a descriptor string: not descriptor settings.
GP_KEYS = {"n_sparse", "delta", "covariance_type", "zeta", "theta_uniform", "theta_fac",
           "theta_file", "sparse_method", "f0", "add_species", "config_type_n_sparse",
           "sparse_file", "mark_sparse_atoms", "unique_descriptor_tolerance",
           "unique_hash_tolerance", "print_sparse_index", "sparse_jitter", "sigma_per_descriptor",
           "lengthscale_factor", "lengthscale_uniform", "lengthscale_file", "n_species_pair"}

_TOKEN = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s*=\s*(\{[^}]*\}|"[^"]*"|\'[^\']*\'|\S+))?')


def parse_quip_string(string):
    """(descriptor name, {key: value string}) of a QUIP descriptor string; a key given
    without a value (``soap``) is the name; braces and quotes are removed from values."""
    tokens = []
    position = 0
    string = string.strip()
    while position < len(string):
        match = _TOKEN.match(string, position)
        if not match or match.end() == position:
            raise ValueError(f"QUIP descriptor string {string!r}: cannot parse from "
                             f"{string[position:]!r}")
        key, value = match.group(1), match.group(2)
        if value is not None and value[:1] in "{\"'":
            value = value[1:-1].strip()
        tokens.append((key, value))
        position = match.end()
    if not tokens or tokens[0][1] is not None:
        raise ValueError(f"QUIP descriptor string {string!r}: must start with the descriptor name")
    options = {}
    for key, value in tokens[1:]:
        options[key.lower()] = "T" if value is None else value
    return tokens[0][0].lower(), options


def _boolean(value, key, string):
    if value.upper() in ("T", "TRUE", ".TRUE."):
        return True
    if value.upper() in ("F", "FALSE", ".FALSE."):
        return False
    raise ValueError(f"QUIP descriptor {string!r}: {key}={value!r} is not a logical (T/F)")


def _integers(value):
    return [int(part) for part in value.replace(",", " ").split()]


class _Options:
    """The options of one string, consumed as they are read, so leftovers can be refused."""

    def __init__(self, name, options, string):
        self.name = name
        self.options = {k: v for k, v in options.items() if k not in GP_KEYS}
        self.string = string

    def take(self, key, convert, default=None):
        if key not in self.options:
            return default
        value = self.options.pop(key)
        try:
            return convert(value)
        except ValueError:
            raise ValueError(f"QUIP descriptor {self.string!r}: cannot read {key}={value!r}"
                             ) from None

    def require_default(self, key, convert, default):
        """Accept ``key`` only at QUIP's default value (the only one checked)."""
        value = self.take(key, convert, default)
        if value != default:
            raise ValueError(f"QUIP descriptor {self.string!r}: {key}={value!r} is not supported "
                             f"by gapfit (only the default {default!r})")

    def finish(self):
        if self.options:
            raise ValueError(f"QUIP descriptor {self.string!r}: option(s) "
                             f"{', '.join(sorted(self.options))} not supported by gapfit's "
                             f"{self.name}")


def _soap(options, string):
    o = _Options("soap", options, string)
    boolean = lambda value: _boolean(value, "logical", string)  # noqa: E731
    cutoff = o.take("cutoff", float)
    n_max = o.take("n_max", int)
    l_max = o.take("l_max", int)
    sigma = o.take("atom_sigma", float)
    width = o.take("atom_gaussian_width", float)
    sigma = width if sigma is None else sigma
    if None in (cutoff, n_max, l_max, sigma):
        raise ValueError(f"QUIP descriptor {string!r}: soap needs cutoff, n_max, l_max and "
                         f"atom_sigma")
    n_species = o.take("n_species", int, 1)
    species_z = o.take("species_z", _integers)
    if species_z is not None and len(species_z) != n_species:
        raise ValueError(f"QUIP descriptor {string!r}: n_species={n_species} but species_Z "
                         f"lists {len(species_z)}")
    if species_z is None and n_species != 1:
        raise ValueError(f"QUIP descriptor {string!r}: n_species={n_species} without species_Z")
    n_z = o.take("n_z", int, 1)
    z = o.take("z", _integers, [0])
    if len(z) != n_z:
        raise ValueError(f"QUIP descriptor {string!r}: n_Z={n_z} but Z lists {len(z)}")
    normalise = o.take("normalise", boolean, True)
    normalise = o.take("normalize", boolean, normalise)
    o.take("xml_version", int)  # no effect on quippy 0.10.3's soap (tested 0 .. 2e9)
    radial_basis = o.take("radial_basis", str, "")
    if radial_basis.upper() not in ("", "EQUISPACED_GAUSS"):
        raise ValueError(f"QUIP descriptor {string!r}: radial_basis={radial_basis} is not "
                         f"supported by gapfit (only EQUISPACED_GAUSS, the default)")
    for key, convert, default in (("average", boolean, False), ("diagonal_radial", boolean, False),
                                  ("cutoff_dexp", int, 0), ("cutoff_scale", float, 1.0),
                                  ("cutoff_rate", float, 1.0), ("nu_r", int, 2),
                                  ("nu_s", int, 2), ("z_mix", boolean, False),
                                  ("r_mix", boolean, False), ("sym_mix", boolean, False),
                                  ("coupling", boolean, True), ("k", int, 0),
                                  ("z_map", str, "")):
        o.require_default(key, convert, default)
    o.take("mix_shift", int)  # only used with mixing, which is refused above
    descriptor = QuipSOAPDescriptor(
        species=species_z, cutoff=cutoff, n_max=n_max, l_max=l_max, atom_sigma=sigma,
        cutoff_transition_width=o.take("cutoff_transition_width", float, 0.5),
        central_weight=o.take("central_weight", float, 1.0),
        covariance_sigma0=o.take("covariance_sigma0", float, 0.0), normalise=normalise,
        Z=None if z == [0] else z,
        central_reference_all_species=o.take("central_reference_all_species", boolean, False),
        basis_error_exponent=o.take("basis_error_exponent", float, 10.0))
    o.finish()
    return descriptor


def _distance_2b(options, string):
    o = _Options("distance_2b", options, string)
    boolean = lambda value: _boolean(value, "logical", string)  # noqa: E731
    cutoff = o.take("cutoff", float)
    if cutoff is None:
        raise ValueError(f"QUIP descriptor {string!r}: distance_2b needs cutoff")
    for key, convert, default in (("resid_name", str, ""), ("only_intra", boolean, False),
                                  ("only_inter", boolean, False), ("n_exponents", int, 1),
                                  ("exponents", _integers, [1]), ("tail_range", float, 1.0),
                                  ("tail_exponent", int, 0)):
        o.require_default(key, convert, default)
    descriptor = QuipDistance2bDescriptor(
        cutoff, o.take("cutoff_transition_width", float, 0.5), Z1=o.take("z1", int, 0),
        Z2=o.take("z2", int, 0))
    o.finish()
    return descriptor


def _angle_3b(options, string):
    o = _Options("angle_3b", options, string)
    cutoff = o.take("cutoff", float)
    if cutoff is None:
        raise ValueError(f"QUIP descriptor {string!r}: angle_3b needs cutoff")
    centre = o.take("z", int, 0)
    alias = o.take("z_center", int, 0)
    if alias and centre and alias != centre:
        raise ValueError(f"QUIP descriptor {string!r}: Z={centre} and Z_center={alias} differ")
    descriptor = QuipAngle3bDescriptor(
        cutoff, o.take("cutoff_transition_width", float, 0.5), Z=centre or alias,
        Z1=o.take("z1", int, 0), Z2=o.take("z2", int, 0))
    o.finish()
    return descriptor


_BUILDERS = {"soap": _soap, "distance_2b": _distance_2b, "angle_3b": _angle_3b}


def descriptor_from_quip_string(string):
    """gapfit's descriptor for a QUIP descriptor string (soap, distance_2b or angle_3b).

    ValueError naming the construct for other descriptors (soap_turbo, ...) and for
    options gapfit does not implement.
    """
    name, options = parse_quip_string(string)
    if name not in _BUILDERS:
        raise ValueError(f"QUIP descriptor {string!r}: descriptor {name!r} is not supported by "
                         f"gapfit (supported: {', '.join(sorted(_BUILDERS))})")
    return _BUILDERS[name](options, string)
