"""Model files: a versioned, checksummed, portable format written atomically.

A model file is a numpy ``.npz`` archive (no pickle) holding a JSON header and the fitted
arrays. This module only writes and checks such files (a leaf: it knows no estimator); what
goes into them is ``gapfit.model.stored``'s. The header records the format version, the
gapfit version, units and a SHA-256 of every array, checked on load. Files are written to a temporary file beside the target and renamed into
place, so a crash or Ctrl-C never leaves a half-written model.
"""
import hashlib
import io
import json
import zipfile

import numpy as np


FORMAT = "gapfit-model"
FORMAT_VERSION = 1
UNITS = {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom",
         "stress": "eV/Angstrom^3 (ASE sign)", "virial": "eV"}


class ModelFileError(ValueError):
    """A model file that cannot be read: corrupted, truncated, or from a newer format."""


def _digest(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def write_model_file(path, header, arrays):
    """Write ``header`` (JSON-ready dict: settings, species, fitted record) and ``arrays``
    ({name: ndarray}) to ``path`` atomically (``gapfit.structures.atomic_files``), with the
    permissions of any new file (the user's umask); the format, versions, units and a
    checksum of every array are added here. An OSError names ``path`` (callers check it with
    ``structures.atomic_files.check_writable`` before their work)."""
    from .. import __version__
    from ..structures.atomic_files import write_bytes_atomically
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "gapfit_version": __version__,
              "units": UNITS, **header,
              "checksums": {name: _digest(array) for name, array in arrays.items()}}
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
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


def read_model_file(path):
    """(header, arrays) of a model file, checked: a zip archive with a header of this format,
    a format version this gapfit reads, and every array's checksum; ModelFileError otherwise."""
    header, arrays = _read_archive(path)
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a gapfit model file")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {header['format_version']} is newer than this"
                             f" gapfit understands ({FORMAT_VERSION}); upgrade gapfit")
    for name, digest in header["checksums"].items():
        if name not in arrays or _digest(arrays[name]) != digest:
            raise ModelFileError(f"{path}: array {name!r} is missing or corrupted (checksum mismatch)")
    return header, arrays
