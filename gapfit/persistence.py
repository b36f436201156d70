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
import os
import tempfile
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
        # noise scaling of an evidence fit and the cheap force score's scale (1/Å)
        "sigma_scales": {kind: float(v) for kind, v in getattr(model, "sigma_scales_", {}).items()},
        "force_score_scale": getattr(model, "force_score_scale_", None),
        "checksums": {name: _digest(array) for name, array in arrays.items()},
    }


def save_model(model, path):
    """Write ``model`` to ``path`` atomically."""
    arrays = _model_arrays(model)
    header = json.dumps(_header(model, arrays))
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(header.encode(), dtype=np.uint8), **arrays)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".gapfit-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(buffer.getvalue())
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _read_archive(path):
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
    if header.get("sigma_scales"):
        model.sigma_scales_ = {kind: float(v) for kind, v in header["sigma_scales"].items()}
    if header.get("force_score_scale") is not None:
        model.force_score_scale_ = float(header["force_score_scale"])
    return model
