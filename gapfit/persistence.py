"""Model files: a versioned, checksummed, portable format written atomically.

A model file is a numpy ``.npz`` archive (no pickle) holding a JSON header and
the fitted arrays. The header records the format version, the gapfit version,
the full settings, species and units, and a SHA-256 of every array, checked on
load. Files are written to a temporary file beside the target and renamed into
place, so a crash or Ctrl-C never leaves a half-written model.
"""
import hashlib
import io
import json
import zipfile

import numpy as np
from sklearn.base import clone

FORMAT = "gapfit-model"
FORMAT_VERSION = 1
UNITS = {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom",
         "stress": "eV/Angstrom^3 (ASE sign)", "virial": "eV"}


class ModelFileError(ValueError):
    """A model file that cannot be read: corrupted, truncated, or from a newer format."""


def _term_record(term):
    params = {name: (np.asarray(value).tolist() if isinstance(value, (np.ndarray, tuple)) else value)
              for name, value in term.get_params(deep=False).items()}
    return {"class": type(term).__name__, "params": params}


def _term_from_record(record):
    from . import terms as term_module
    cls = getattr(term_module, record["class"], None)
    if cls is None:
        raise ModelFileError(f"unknown term class {record['class']!r} in model file")
    return cls(**record["params"])


def _digest(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _model_arrays(model):
    arrays = {"alpha": model.alpha_, "factor": model.factor_}
    for index, term in enumerate(model.terms_):
        arrays[f"term{index}_sparse_points"] = term.sparse_points_
        arrays[f"term{index}_sparse_channels"] = term.sparse_channels_
        for name, value in term.state_arrays().items():
            arrays[f"term{index}_state_{name}"] = value
    return arrays


def _header(model, arrays):
    from . import __version__
    params = model.get_params(deep=False)
    params["terms"] = [_term_record(term) for term in model.terms_]
    if not isinstance(params.get("random_state"), (int, type(None))):
        params["random_state"] = None
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "gapfit_version": __version__,
        "settings": params, "species": model.species_, "units": UNITS,
        "e0": {str(z): value for z, value in model.e0_.items()},
        "n_training_structures": model.n_training_structures_,
        "checksums": {name: _digest(array) for name, array in arrays.items()},
    }


def save_model(model, path):
    """Write ``model`` to ``path`` atomically (``gapfit.atomic_files``), with the permissions of
    any new file (the user's umask). The destination is checked first: an OSError names ``path``."""
    from .atomic_files import check_writable, write_bytes_atomically
    check_writable(path)
    arrays = _model_arrays(model)
    header = json.dumps(_header(model, arrays))
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(header.encode(), dtype=np.uint8), **arrays)
    write_bytes_atomically(path, buffer.getvalue())


def _check_is_archive(path):
    """ModelFileError unless ``path`` starts like a zip archive (a model file is an .npz)."""
    with open(path, "rb") as stream:
        start = stream.read(4)
    if start[:2] != b"PK":
        kind = "an empty file" if not start else (
            "text" if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in start) else "binary data")
        raise ModelFileError(f"{path}: not a gapfit model file (it holds {kind}; a model file is "
                             "the .npz archive written by gapfit fit or GAP.save)")


def _read_archive(path):
    _check_is_archive(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise ModelFileError(f"{path}: not a readable gapfit model file ({error})") from error
    if "header" not in contents:
        raise ModelFileError(f"{path}: not a gapfit model file (no header)")
    try:
        header = json.loads(contents.pop("header").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: model header is corrupted ({error})") from error
    return header, contents


def _check_known_settings(path, header, settings):
    """ModelFileError naming the writer's gapfit version and any setting this version lacks."""
    from . import __version__
    from . import terms as term_module
    from .model import GAP
    unknown = sorted(set(settings) - set(GAP().get_params(deep=False)))
    for index, record in enumerate(settings.get("terms") or []):
        cls = getattr(term_module, record.get("class", ""), None)
        if cls is None:
            unknown.append(f"term type {record.get('class')}")
        else:
            unknown += [f"{cls.__name__}.{name}" for name in sorted(
                set(record.get("params", {})) - set(cls().get_params(deep=False)))]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise ModelFileError(
            f"{path}: written by gapfit {header.get('gapfit_version', 'of unknown version')} with "
            f"setting{plural} {', '.join(map(repr, unknown))} that this gapfit ({__version__}) does "
            "not know; upgrade gapfit to read it")


def load_model(path):
    """Read a model written by ``save_model``; raises ModelFileError on any damage."""
    from .model import GAP
    header, arrays = _read_archive(path)
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a gapfit model file")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {header['format_version']} is newer than this"
                             f" gapfit understands ({FORMAT_VERSION}); upgrade gapfit")
    for name, digest in header["checksums"].items():
        if name not in arrays or _digest(arrays[name]) != digest:
            raise ModelFileError(f"{path}: array {name!r} is missing or corrupted (checksum mismatch)")
    settings = dict(header["settings"])
    _check_known_settings(path, header, settings)
    settings["terms"] = [_term_from_record(record) for record in settings["terms"]]
    model = GAP(**settings)
    model.species_ = [int(z) for z in header["species"]]
    model.e0_ = {int(z): float(v) for z, v in header["e0"].items()}
    model.terms_ = [clone(term).build(model.species_) for term in model.terms]
    for index, term in enumerate(model.terms_):
        term.set_sparse(arrays[f"term{index}_sparse_points"], arrays[f"term{index}_sparse_channels"])
        prefix = f"term{index}_state_"
        state = {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}
        if state:
            term.restore_state(state)
    model.alpha_ = arrays["alpha"]
    model.factor_ = arrays["factor"]
    model.n_training_structures_ = header["n_training_structures"]
    return model
