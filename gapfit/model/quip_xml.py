"""Read and write gap_fit XML model files (QUIP's GAP format) as plain records.

A gap_fit model is one XML file plus one text file of sparse points per descriptor
coordinate (``<xml>.sparseX.<label>``, one number a line, checked by an md5 sum in the
XML).  :func:`read_gap_xml` turns them into a :class:`QuipModel` of numpy arrays and
settings; :func:`write_gap_xml` writes such a record back so that quippy
(``quippy.potential.Potential(param_filename=...)``) and LAMMPS ``pair_style quip`` load it.

What a record means for predictions (found by black-box comparison with quippy 0.10.3,
see ``gapfit/quip_kernels.py`` and /work/notes/quip_model_facts.md):

    E = Σ_Z n_Z e0[Z] + Σ_coordinates Σ_descriptors f_i Σ_m c_m α_m (δ² k(q_i, s_m) + μ²[ard_se, pp])

with δ = ``signal_variance`` (the file stores δ, not δ²), μ = ``signal_mean``, f_i the
descriptor's covariance cutoff, c_m = ``sparse_cutoff``.

Only what gapfit can represent is accepted: ``soap`` (uncompressed), ``distance_2b`` and
``angle_3b`` descriptors with ``ard_se``, ``dot_product`` or ``pp`` covariances, in a file
whose potential is a plain ``IP GAP`` without a core potential.  Anything else is refused
with a one-line :class:`QuipModelError` naming the construct and the file.
"""
import hashlib
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..structures.atomic_files import write_bytes_atomically
from .model_file import ModelFileError

__all__ = [
    "QuipModelError",
    "QuipCoordinate",
    "QuipModel",
    "read_gap_xml",
    "write_gap_xml",
    "parse_descriptor_string",
    "SUPPORTED_DESCRIPTORS",
    "COVARIANCE_CODES",
    "GAP_VERSION",
]

#: gap_version written by gap_fit of QUIP 0.10.3 (the quippy-ase 0.10.3 wheel); quippy
#: 0.10.x loads it, and it selects the current SOAP conventions (≥ 1423143769).
GAP_VERSION = 1769700636

SUPPORTED_DESCRIPTORS = ("soap", "distance_2b", "angle_3b")

#: covariance_type integers in the XML, as gap_fit 0.10.3 writes them.
COVARIANCE_CODES = {"ard_se": 1, "dot_product": 2, "pp": 4}
_COVARIANCE_NAMES = {code: name for name, code in COVARIANCE_CODES.items()}
_KNOWN_UNSUPPORTED_COVARIANCES = {3: "bond_real_space"}

#: SOAP settings that switch on compression or mixing, which gapfit does not represent.
_SOAP_REFUSED_PREFIXES = ("compress",)
_SOAP_REFUSED_FLAGS = ("R_mix", "Z_mix", "sym_mix", "coupling_mix")
_SOAP_REFUSED_KEYS = ("K",)

_MAX_Z = 118


class QuipModelError(ModelFileError):
    """A gap_fit XML model that cannot be read or holds a construct gapfit does not support."""


@dataclass
class QuipCoordinate:
    """One ``<gpCoordinates>`` block: a descriptor, its covariance and its sparse GP.

    Attributes
    ----------
    label : the coordinate's label; its sparse points live in ``<xml>.sparseX.<label>``
    descriptor : the descriptor string exactly as in the file (stripped), e.g.
        ``"soap n_max=4 ... Z=29 species_Z={29 }"``; quippy's ``Descriptor`` takes it as is
    name : the descriptor's name (first word): ``soap``, ``distance_2b`` or ``angle_3b``
    settings : ``key -> value`` strings of the descriptor string (braces stripped)
    covariance_type : ``"ard_se"``, ``"dot_product"`` or ``"pp"``
    signal_variance : δ (eV), the energy scale; the kernel is multiplied by δ²
    signal_mean : μ (eV); μ² is added to ard_se and pp kernels, not to dot_product
    zeta : exponent of the dot_product kernel (None otherwise)
    theta : (d,) length scales of ard_se/pp in descriptor units (None for dot_product)
    sparse_points : (M, d) sparse descriptor vectors s_m as stored (for SOAP: unit length
        before the trailing covariance_sigma0 element)
    alpha : (M,) coefficients α_m (eV⁻¹ δ⁻² scale: energy = δ² Σ k α)
    sparse_cutoff : (M,) covariance cutoff of each sparse point's own environment
    permutations : (P, n) 0-based permutations as stored (gap_fit writes one identity row:
        ``[0]`` for soap and distance_2b, ``[0, 1, 2]`` for angle_3b); only P = 1 is supported
    """

    label: str
    descriptor: str
    name: str
    settings: dict
    covariance_type: str
    signal_variance: float
    signal_mean: float
    zeta: float | None
    theta: np.ndarray | None
    sparse_points: np.ndarray
    alpha: np.ndarray
    sparse_cutoff: np.ndarray
    permutations: np.ndarray

    @property
    def dimensions(self):
        """Length d of the descriptor vector."""
        return int(self.sparse_points.shape[1])

    @property
    def n_sparse(self):
        """Number M of sparse points."""
        return int(self.sparse_points.shape[0])


@dataclass
class QuipModel:
    """A gap_fit model: e0 table and descriptor coordinates.

    Attributes
    ----------
    label : the GAP label (``IP GAP label=...``; also the root tag of the file)
    gap_version : the file's ``gap_version`` integer (decides SOAP conventions in quippy)
    e0 : ``{Z: e0}`` energy per atom of each atomic number (eV), added to every prediction
    coordinates : the :class:`QuipCoordinate` blocks, in file order
    command_line : gap_fit's command line when the file records it (provenance only)
    posterior : None: gap_fit 0.10.3 files carry no posterior covariance (even with
        ``export_covariance=T`` in this build), so no predictive variance can be given
    """

    label: str
    gap_version: int
    e0: dict
    coordinates: list
    command_line: str | None = None
    posterior: object = field(default=None)

    def e0_energy(self, numbers):
        """Σ e0[Z] over the atomic numbers ``numbers`` (eV); absent Z count as 0."""
        return float(sum(self.e0.get(int(z), 0.0) for z in numbers))


# ---------------------------------------------------------------------------------------
# descriptor strings


def parse_descriptor_string(text):
    """Split a QUIP descriptor string into ``(name, {key: value})``.

    Values keep their text; braces or quotes around a value are removed
    (``species_Z={29 79 }`` gives ``"29 79"``).  A bare word after the name is a flag
    with value ``"T"``.
    """
    tokens = re.findall(r'([^\s=]+)(?:=(\{[^}]*\}|"[^"]*"|\'[^\']*\'|[^\s]*))?', text.strip())
    if not tokens:
        raise ValueError("empty descriptor string")
    name = tokens[0][0]
    settings = {}
    for key, value in tokens[1:]:
        if value[:1] in "{\"'" and len(value) >= 2:
            value = value[1:-1].strip()
        settings[key] = value if value != "" else "T"
    return name, settings


def _is_true(value):
    return str(value).strip().lower() in ("t", "true", "1", ".true.")


def _check_descriptor(name, settings, path):
    if name not in SUPPORTED_DESCRIPTORS:
        raise QuipModelError(f"{path}: descriptor '{name}' is not supported "
                             f"(supported: {', '.join(SUPPORTED_DESCRIPTORS)})")
    if name == "soap":
        for key, value in settings.items():
            if key.startswith(_SOAP_REFUSED_PREFIXES) or key in _SOAP_REFUSED_KEYS:
                raise QuipModelError(f"{path}: compressed SOAP ({key}={value}) is not supported")
            if key in _SOAP_REFUSED_FLAGS and _is_true(value):
                raise QuipModelError(f"{path}: compressed SOAP ({key}={value}) is not supported")


# ---------------------------------------------------------------------------------------
# reading


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _float(element, name, path, where):
    text = element.get(name)
    if text is None:
        raise QuipModelError(f"{path}: {where} has no '{name}' attribute")
    try:
        return float(text)
    except ValueError:
        raise QuipModelError(f"{path}: {where} attribute {name}={text!r} is not a number") from None


def _int(element, name, path, where):
    value = _float(element, name, path, where)
    if value != int(value):
        raise QuipModelError(f"{path}: {where} attribute {name}={value!r} is not an integer")
    return int(value)


def _read_sparse_points(coordinate, path, where, n_sparse, dimensions):
    filename = coordinate.get("sparseX_filename")
    if filename is None:
        raise QuipModelError(f"{path}: {where} keeps its sparse points inside the XML "
                             "(no sparseX_filename), which is not supported")
    sparse_path = Path(path).parent / filename
    if not sparse_path.is_file():
        raise QuipModelError(f"{path}: sparseX file {sparse_path} of {where} is missing")
    expected = coordinate.get("sparseX_md5sum")
    if expected is not None and _md5(sparse_path).lower() != expected.strip().lower():
        raise QuipModelError(f"{path}: sparseX file {sparse_path} of {where} does not match its "
                             f"md5 sum {expected} (corrupted or replaced)")
    try:
        values = np.array(sparse_path.read_text().split(), dtype=np.float64)
    except ValueError:
        raise QuipModelError(f"{path}: sparseX file {sparse_path} of {where} holds text that "
                             "is not a number") from None
    if values.size != n_sparse * dimensions:
        raise QuipModelError(f"{path}: sparseX file {sparse_path} of {where} has {values.size} "
                             f"numbers, expected n_sparseX × dimensions = {n_sparse} × "
                             f"{dimensions}")
    return values.reshape(n_sparse, dimensions)


def _indexed(element, tag, path, where):
    """The ``<tag i="...">`` children of ``element`` in order of ``i``."""
    children = element.findall(tag)
    for child in children:
        _int(child, "i", path, f"<{tag}> of {where}")
    return sorted(children, key=lambda child: int(float(child.get("i"))))


def _read_coordinate(element, path, index):
    where = f"gpCoordinates {index + 1} (label {element.get('label')})"
    descriptor_element = element.find("descriptor")
    if descriptor_element is None or not (descriptor_element.text or "").strip():
        raise QuipModelError(f"{path}: {where} has no <descriptor>")
    descriptor = descriptor_element.text.strip()
    name, settings = parse_descriptor_string(descriptor)
    _check_descriptor(name, settings, path)

    code = _int(element, "covariance_type", path, where)
    if code not in _COVARIANCE_NAMES:
        known = _KNOWN_UNSUPPORTED_COVARIANCES.get(code, "unknown")
        raise QuipModelError(f"{path}: covariance_type={code} ({known}) of {where} is not "
                             "supported (supported: ard_se, dot_product, pp)")
    covariance_type = _COVARIANCE_NAMES[code]
    if element.get("sparsified", "T").strip().upper() not in ("T", "TRUE"):
        raise QuipModelError(f"{path}: {where} is a full (unsparsified) GP, not supported")

    dimensions = _int(element, "dimensions", path, where)
    n_sparse = _int(element, "n_sparseX", path, where)
    signal_variance = _float(element, "signal_variance", path, where)
    signal_mean = _float(element, "signal_mean", path, where) if element.get("signal_mean") else 0.0
    zeta = _float(element, "zeta", path, where) if covariance_type == "dot_product" else None

    theta = None
    if covariance_type in ("ard_se", "pp"):
        theta_element = element.find("theta")
        if theta_element is None:
            raise QuipModelError(f"{path}: {where} ({covariance_type}) has no <theta>")
        theta = np.array((theta_element.text or "").split(), dtype=np.float64)
        if theta.shape != (dimensions,):
            raise QuipModelError(f"{path}: {where} has {theta.size} theta values for "
                                 f"{dimensions} dimensions")

    n_permutations = _int(element, "n_permutations", path, where) if element.get(
        "n_permutations") else 1
    permutation_elements = _indexed(element, "permutation", path, where)
    if len(permutation_elements) != n_permutations:
        raise QuipModelError(f"{path}: {where} declares {n_permutations} permutations and "
                             f"holds {len(permutation_elements)}")
    rows = [[int(v) - 1 for v in (p.text or "").split()] for p in permutation_elements]
    if len({len(row) for row in rows}) > 1 or any(sorted(row) != list(range(len(row)))
                                                  for row in rows):
        raise QuipModelError(f"{path}: {where} has a <permutation> that is not a permutation")
    permutations = np.array(rows, dtype=np.int64).reshape(n_permutations, -1)
    if n_permutations > 1:
        raise QuipModelError(f"{path}: {where} has {n_permutations} permutations; "
                             "permutation-symmetrised kernels are not supported")

    sparse_elements = _indexed(element, "sparseX", path, where)
    if len(sparse_elements) != n_sparse:
        raise QuipModelError(f"{path}: {where} declares n_sparseX={n_sparse} and holds "
                             f"{len(sparse_elements)} <sparseX> entries")
    alpha = np.array([_float(e, "alpha", path, where) for e in sparse_elements])
    sparse_cutoff = np.array([_float(e, "sparseCutoff", path, where) if e.get("sparseCutoff")
                              else 1.0 for e in sparse_elements])
    sparse_points = _read_sparse_points(element, path, where, n_sparse, dimensions)
    return QuipCoordinate(
        label=element.get("label"), descriptor=descriptor, name=name, settings=settings,
        covariance_type=covariance_type, signal_variance=signal_variance,
        signal_mean=signal_mean, zeta=zeta, theta=theta, sparse_points=sparse_points,
        alpha=alpha, sparse_cutoff=sparse_cutoff, permutations=permutations)


def read_gap_xml(path):
    """Read a gap_fit XML model and its sparseX files into a :class:`QuipModel`.

    Parameters
    ----------
    path : the model XML; its sparseX files are looked up next to it (names as stored)

    Raises
    ------
    QuipModelError (a ValueError) naming the file and the construct for: a missing file, XML
    that does not parse, a missing or corrupted (md5 mismatch) sparseX file, a potential other
    than a plain ``IP GAP`` (``IP Glue``, a ``Sum``/mix chosen by ``xml_label``, a core
    potential), an unsupported descriptor (``soap_turbo``, compressed SOAP, any unknown) or
    covariance (``bond_real_space``, unknown), or inconsistent counts.
    """
    path = Path(path)
    if not path.is_file():
        raise QuipModelError(f"{path}: model file not found")
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise QuipModelError(f"{path}: not a readable XML file ({error})") from None

    potentials = root.findall("Potential")
    if not potentials:
        raise QuipModelError(f"{path}: no <Potential> element; not a gap_fit model file")
    for potential in potentials:
        init_args = (potential.get("init_args") or "").strip()
        if not re.match(r"IP\s+GAP(\s|$)", init_args):
            raise QuipModelError(f"{path}: potential '{init_args}' is not supported "
                                 "(only a plain 'IP GAP'; no IP Glue, sums or xml_label mixes)")
    others = sorted({child.tag for child in root} - {"Potential", "GAP_params"})
    if others:
        raise QuipModelError(f"{path}: extra potential block <{others[0]}> (e.g. a core "
                             "potential or an xml_label mix) is not supported")
    gap_blocks = root.findall("GAP_params")
    if len(gap_blocks) != 1:
        raise QuipModelError(f"{path}: {len(gap_blocks)} <GAP_params> blocks; exactly one "
                             "is supported (xml_label mixes are not)")
    gap = gap_blocks[0]
    label = gap.get("label") or ""
    init_label = re.search(r"label=(\S+)", potentials[0].get("init_args"))
    if init_label is not None and init_label.group(1) != label:
        raise QuipModelError(f"{path}: <Potential> points at label {init_label.group(1)} but "
                             f"<GAP_params> has label {label}")
    gap_version = _int(gap, "gap_version", path, "<GAP_params>") if gap.get(
        "gap_version") else 0

    data = gap.find("GAP_data")
    if data is None:
        raise QuipModelError(f"{path}: <GAP_params> has no <GAP_data> (e0 table)")
    if _is_true(data.get("do_core", "F")):
        raise QuipModelError(f"{path}: core potential (GAP_data do_core=T) is not supported")
    e0 = {}
    for entry in data.findall("e0"):
        e0[_int(entry, "Z", path, "<e0>")] = _float(entry, "value", path, "<e0>")

    sparse = gap.find("gpSparse")
    if sparse is None:
        raise QuipModelError(f"{path}: <GAP_params> has no <gpSparse>")
    if not _is_true(sparse.get("fitted", "T")):
        raise QuipModelError(f"{path}: gpSparse fitted=F (an unfitted model)")
    elements = sparse.findall("gpCoordinates")
    declared = sparse.get("n_coordinate")
    if declared is not None and int(declared) != len(elements):
        raise QuipModelError(f"{path}: gpSparse declares n_coordinate={declared} and holds "
                             f"{len(elements)} <gpCoordinates>")
    coordinates = [_read_coordinate(element, path, index) for index, element in enumerate(elements)]
    command = gap.find("command_line")
    command_line = command.text if command is not None and command.text else None
    return QuipModel(label=label, gap_version=gap_version, e0=e0, coordinates=coordinates,
                     command_line=command_line)


# ---------------------------------------------------------------------------------------
# writing


def _number(value):
    """A float as text that Fortran reads and that round-trips exactly."""
    return f"{float(value):.17e}"


def _sparse_text(points):
    return "".join(f"{value:.20e}\n" for value in np.asarray(points, dtype=np.float64).reshape(-1))


def _coordinate_xml(coordinate, sparse_filename, md5sum):
    if coordinate.covariance_type not in COVARIANCE_CODES:
        raise ValueError(f"coordinate {coordinate.label}: covariance_type "
                         f"{coordinate.covariance_type!r} cannot be written")
    points = np.asarray(coordinate.sparse_points, dtype=np.float64)
    n_sparse, dimensions = points.shape
    alpha = np.asarray(coordinate.alpha, dtype=np.float64).reshape(-1)
    cutoff = np.asarray(coordinate.sparse_cutoff, dtype=np.float64).reshape(-1)
    permutations = np.atleast_2d(np.asarray(coordinate.permutations, dtype=np.int64))
    if alpha.shape != (n_sparse,) or cutoff.shape != (n_sparse,):
        raise ValueError(f"coordinate {coordinate.label}: {n_sparse} sparse points but "
                         f"{alpha.size} alpha and {cutoff.size} sparse cutoffs")
    attributes = [
        ("label", coordinate.label),
        ("dimensions", str(dimensions)),
        ("signal_variance", _number(coordinate.signal_variance)),
        ("signal_mean", _number(coordinate.signal_mean)),
        ("sparsified", "T"),
        ("n_permutations", str(len(permutations))),
        ("covariance_type", str(COVARIANCE_CODES[coordinate.covariance_type])),
    ]
    if coordinate.covariance_type == "dot_product":
        attributes.append(("zeta", _number(coordinate.zeta)))
    attributes += [("n_sparseX", str(n_sparse)), ("sparseX_filename", sparse_filename),
                   ("sparseX_md5sum", md5sum)]
    lines = ["    <gpCoordinates " + " ".join(f"{k}={quoteattr(v)}" for k, v in attributes) + ">"]
    if coordinate.covariance_type in ("ard_se", "pp"):
        theta = np.asarray(coordinate.theta, dtype=np.float64).reshape(-1)
        if theta.shape != (dimensions,):
            raise ValueError(f"coordinate {coordinate.label}: {theta.size} theta values for "
                             f"{dimensions} dimensions")
        lines.append("      <theta>" + " ".join(_number(v) for v in theta) + "</theta>")
    lines.append(f"      <descriptor>{escape(coordinate.descriptor)}</descriptor>")
    for index, row in enumerate(permutations.tolist(), start=1):
        lines.append(f'      <permutation i="{index}">' + " ".join(str(v + 1) for v in row)
                     + "</permutation>")
    for index, (a, c) in enumerate(zip(alpha, cutoff), start=1):
        lines.append(f'      <sparseX i="{index}" alpha="{_number(a)}" '
                     f'sparseCutoff="{_number(c)}"/>')
    lines.append("    </gpCoordinates>")
    return lines


def write_gap_xml(model, path):
    """Write a :class:`QuipModel` as a gap_fit XML file plus its sparseX files.

    The sparseX files are ``<path name>.sparseX.<coordinate label>`` next to ``path``
    (``%.20e``, one number a line) and the XML records their md5 sums; the e0 table covers
    Z = 1…118 (absent Z are 0, as gap_fit writes it).  Every file goes through a temporary
    file and a rename, the XML last, so no reader ever sees a half-written file.  The
    output depends only on the record: read → write → read → write gives identical bytes.

    Returns the path written.
    """
    path = Path(path)
    label = str(model.label)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", label):
        raise ValueError(f"model label {label!r} must be an XML name (letters, digits, _ . -)")
    labels = [str(coordinate.label) for coordinate in model.coordinates]
    if len(set(labels)) != len(labels) or not all(
            re.fullmatch(r"[A-Za-z0-9_.\-]+", name) for name in labels):
        raise ValueError(f"coordinate labels {labels} must be distinct words (letters, "
                         "digits, _ . -)")
    for coordinate in model.coordinates:
        name, settings = parse_descriptor_string(coordinate.descriptor)
        _check_descriptor(name, settings, path)
    sparse_files = []
    coordinate_lines = []
    for coordinate in model.coordinates:
        filename = f"{path.name}.sparseX.{coordinate.label}"
        text = _sparse_text(coordinate.sparse_points).encode()
        sparse_files.append((path.parent / filename, text))
        coordinate_lines += _coordinate_xml(coordinate, filename, hashlib.md5(text).hexdigest())
    e0 = {int(z): float(v) for z, v in model.e0.items()}
    if any(z < 1 or z > _MAX_Z for z in e0):
        raise ValueError(f"e0 table has atomic numbers outside 1..{_MAX_Z}: {sorted(e0)}")
    lines = [
        f"<{label}>",
        f'<Potential label="{label}" init_args="IP GAP label={label}"/>',
        f'<GAP_params label="{label}" gap_version="{int(model.gap_version)}">',
        '  <GAP_data do_core="F">',
    ]
    lines += [f'    <e0 Z="{z}" value="{_number(e0.get(z, 0.0))}"/>' for z in range(1, _MAX_Z + 1)]
    lines += [
        "  </GAP_data>",
        f'  <gpSparse label="{label}" n_coordinate="{len(model.coordinates)}" fitted="T">',
        *coordinate_lines,
        "  </gpSparse>",
    ]
    if model.command_line:
        command = model.command_line.replace("]]>", "]]]]><![CDATA[>")
        lines.append(f"  <command_line><![CDATA[{command}]]></command_line>")
    lines += ["</GAP_params>", f"</{label}>", ""]
    for sparse_path, text in sparse_files:
        write_bytes_atomically(sparse_path, text)
    write_bytes_atomically(path, "\n".join(lines).encode())
    return path
