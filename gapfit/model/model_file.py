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

from ..fit.noise import NoiseModel
from .recipe import RecipeReport

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
    from . import quip_terms
    from . import terms as term_module
    cls = getattr(term_module, record["class"], None) or getattr(quip_terms, record["class"], None)
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
    from .. import __version__
    params = model.get_params(deep=False)
    params["terms"] = (None if model.terms is None
                       else [_term_record(term) for term in model.terms])
    if not isinstance(params.get("random_state"), (int, type(None))):
        params["random_state"] = None
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "gapfit_version": __version__,
        "settings": params, "species": model.species_, "units": UNITS,
        "e0": {str(z): value for z, value in model.e0_.items()},
        "noise": model.noise_.to_dict(),
        "fitted_terms": [_term_record(term) for term in model.terms_],
        "fitted_deltas": [term.delta_ for term in model.terms_],
        "recipe": model.recipe_.to_dict() if hasattr(model, "recipe_") else None,
        "n_training_structures": model.n_training_structures_,
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
    from .estimator import GAP
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
    if settings["terms"] is not None:
        settings["terms"] = [_term_from_record(record) for record in settings["terms"]]
    model = GAP(**settings)
    model.species_ = [int(z) for z in header["species"]]
    model.e0_ = {int(z): float(v) for z, v in header["e0"].items()}
    # files before fitted terms were stored separately: the settings' terms were the fitted ones
    fitted = [_term_from_record(record)
              for record in header.get("fitted_terms", header["settings"]["terms"])]
    model.terms_ = [term.build(model.species_) for term in fitted]
    # files before the noise model and fitted deltas were stored: the settings are the fit
    model.noise_ = (NoiseModel.from_dict(header["noise"]) if "noise" in header else
                    NoiseModel(model.energy_sigma, model.force_sigma, model.virial_sigma,
                               model.config_type_sigma))
    for term, delta in zip(model.terms_, header.get("fitted_deltas", [])):
        term.delta_ = float(delta)
    if header.get("recipe"):
        model.recipe_ = RecipeReport.from_dict(header["recipe"])
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
