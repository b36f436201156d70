"""Reading and writing labelled structures: extended XYZ (or anything ASE reads) and mlearn JSON.

Reference labels travel on each Atoms as a SinglePointCalculator: energy in eV, forces in eV/Å,
stress in eV/Å³ with ASE's sign (positive = tensile) in Voigt order (xx, yy, zz, yz, xz, xy).
"""
import json
import os
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io.extxyz import key_val_dict_to_str
from ase.io.formats import string2index

from .voigt import matrix_from_voigt, stress_from_virial, voigt_from_matrix

KBAR = 0.1 / 160.21766208  # eV/Å³ in one kBar

_LABEL_NAMES = ("energy", "forces", "stress")
# written by ``write`` itself, so never copied from atoms.info / atoms.arrays
_FRAME_INFO_KEYS = {"Lattice", "Properties", "pbc"}
_FRAME_ARRAY_KEYS = {"numbers", "positions", "symbols", "species", "pos"}


class _MissingLabel(Exception):
    """A label asked for by name is absent or malformed (re-raised with file and configuration)."""


# ----------------------------------------------------------------------------- tensors
def _as_voigt(value, what):
    """A tensor given as 6 Voigt numbers, 9 numbers or 3×3, as a Voigt vector."""
    value = np.asarray(value, dtype=np.float64)
    if value.size == 6:
        return value.reshape(6).copy()
    if value.size == 9:
        return voigt_from_matrix(value)
    raise _MissingLabel(f"{what} has {value.size} numbers, expected 6 (Voigt xx yy zz yz xz xy), "
                        "9 or 3×3")


# ----------------------------------------------------------------------------- labels
def labels(atoms):
    """Reference (energy eV, forces (N, 3) eV/Å, stress (6,) eV/Å³ Voigt), None where absent.

    Read only from a SinglePointCalculator's results, so the predictions of any
    other calculator (a model, EMT) are never taken for reference data. The
    results are read directly, without ASE's check that the atoms have not moved
    since the labels were attached (wrapping positions back into the cell is
    harmless; moving atoms on purpose makes the labels wrong in any case).
    """
    calc = atoms.calc
    if not isinstance(calc, SinglePointCalculator):
        return None, None, None
    results = calc.results
    energy = results.get("energy")
    forces = results.get("forces")
    stress = results.get("stress")
    if energy is not None:
        energy = float(np.asarray(energy, dtype=np.float64).reshape(()))
    if forces is not None:
        forces = np.array(forces, dtype=np.float64)
    if stress is not None:
        stress = np.asarray(stress, dtype=np.float64)
        stress = voigt_from_matrix(stress) if stress.size == 9 else stress.reshape(-1).copy()
    return energy, forces, stress


def _take(atoms, results, what, key, per_atom, required):
    """The ``what`` label stored under ``key``: in ASE's calculator results, else atoms.info/arrays."""
    if key in results:
        return results.pop(key)
    store = atoms.arrays if per_atom else atoms.info
    if key in store:
        return store.pop(key)
    if required:
        where = "atoms.arrays (a per-atom column)" if per_atom else "atoms.info (the comment line)"
        raise _MissingLabel(f"{what} key {key!r} not found in {where}")
    return None


def _attach_labels(atoms, energy_key, forces_key, stress_key, virial_key):
    """Replace whatever ASE attached by a SinglePointCalculator holding the requested labels."""
    calc = atoms.calc
    results = dict(calc.results) if isinstance(calc, SinglePointCalculator) else {}
    energy = _take(atoms, results, "energy", energy_key or "energy", False, energy_key is not None)
    forces = _take(atoms, results, "forces", forces_key or "forces", True, forces_key is not None)
    stress, virial = None, None
    if virial_key is None:
        stress = _take(atoms, results, "stress", stress_key or "stress", False, stress_key is not None)
    if stress is None and stress_key is None:
        virial = _take(atoms, results, "virial", virial_key or "virial", False, virial_key is not None)
    for name in _LABEL_NAMES:  # labels under other names were not asked for
        results.pop(name, None)

    if energy is not None:
        try:
            results["energy"] = float(np.asarray(energy, dtype=np.float64).reshape(()))
        except (TypeError, ValueError):
            raise _MissingLabel(f"energy key {energy_key or 'energy'!r} is not one number: "
                                f"{energy!r}") from None
    if forces is not None:
        results["forces"] = np.asarray(forces, dtype=np.float64)
    if stress is not None:
        results["stress"] = _as_voigt(stress, f"stress key {stress_key or 'stress'!r}")
    if virial is not None:
        name = virial_key or "virial"
        if not atoms.pbc.all() or abs(atoms.cell.volume) < 1e-12:
            raise _MissingLabel(f"virial key {name!r} given but the cell is not periodic in 3D "
                                f"(pbc={atoms.pbc.tolist()}), so it has no volume")
        results["stress"] = stress_from_virial(_as_voigt(virial, f"virial key {name!r}"),
                                               abs(atoms.cell.volume))
    atoms.calc = SinglePointCalculator(atoms, **results) if results else None


def _file_position(path, index, position, format):
    """Index in the file of the ``position``-th configuration read with ``index``."""
    selection = string2index(index) if isinstance(index, str) else index
    if isinstance(selection, int):
        if selection >= 0:
            return selection
    elif (selection.step or 1) > 0 and (selection.start or 0) >= 0:
        return (selection.start or 0) + position * (selection.step or 1)
    count = len(ase.io.read(path, index=":", format=format, do_not_split_by_at_sign=True))
    return range(count)[selection] if isinstance(selection, int) else range(count)[selection][position]


def split_selection(path):
    """(file name, index or None) of a path in ASE's ``file.xyz@:5`` syntax.

    The text after the last ``@`` of the file's name is an index or slice ("3", ":5",
    "10:20:2", "-1"); without ``@`` (or when a file of that very name exists) the index
    is None. An ``@`` followed by anything else is a ValueError naming the path.
    """
    text = str(path)
    if "@" not in Path(text).name or Path(text).exists():
        return text, None
    name, _, index = text.rpartition("@")
    try:
        if isinstance(string2index(index), str):  # ASE's database accessors are not indices
            raise ValueError(index)
    except ValueError:
        raise ValueError(f"{text}: {index!r} after '@' is not a configuration index or slice "
                         "(ASE's syntax: file.xyz@:5, file.xyz@10:20, file.xyz@-1)") from None
    return name, index


def selected_positions(count, index):
    """Positions in a file of ``count`` configurations that ``index`` (as ``read`` takes it) selects,
    as a range."""
    selection = string2index(index) if isinstance(index, str) else index
    if isinstance(selection, slice):
        return range(count)[selection]
    position = range(count)[selection]  # IndexError when out of range
    return range(position, position + 1)


def is_mlearn_file(path, format=None):
    """True if ``format`` is "mlearn", or it is None and ``path`` is a .json file holding a list."""
    if format is not None:
        return format == "mlearn"
    if not str(path).lower().endswith(".json"):
        return False
    try:
        with open(path) as stream:
            start = stream.read(4096).lstrip()
    except (OSError, UnicodeDecodeError):
        return True  # let read_mlearn report the problem
    return not start.startswith("{")  # an ASE database is a JSON object, mlearn a list


def read(path, index=None, energy_key=None, forces_key=None, stress_key=None, virial_key=None,
         format=None):
    """Structures of any ASE-readable file (extended XYZ first of all) or mlearn JSON with their
    reference labels. The one reader of every gapfit command.

    Parameters
    ----------
    path : str or Path; ASE's ``file.xyz@:5`` syntax selects configurations (``split_selection``).
    index : which configurations, as in ``ase.io.read`` (":" all, "10:20", 3, ...); default all,
        or those after ``@`` in ``path`` (give one or the other).
    energy_key : name of the total energy (eV) in the comment line, e.g. "dft_energy".
    forces_key : name of the per-atom force column (eV/Å), e.g. "dft_forces".
    stress_key : name of the stress (eV/Å³, ASE sign; 6 Voigt numbers, 9 or 3×3).
    virial_key : name of the virial (eV; 3×3, 9, or 6 in Voigt order xx yy zz yz xz xy),
        converted to stress = -virial / volume. Give stress_key or virial_key, not both.
    format : ASE format name, "mlearn" (``read_mlearn``), or None to guess from the file name
        (a .json file holding a list is mlearn JSON).

    A key left as None means the standard name ("energy", "forces", "stress", else
    "virial") and is optional; a key given explicitly must be present in every
    configuration, else ValueError naming the file, the configuration (its index in
    the file) and the key. Labels under other standard names are dropped, so a
    model's ``energy`` in the same file never stands in for ``dft_energy``.

    Returns a list of Atoms, each with a SinglePointCalculator holding the labels
    (energy eV, forces eV/Å, stress eV/Å³ Voigt) or no calculator when it has none;
    ``atoms.info`` (``config_type`` and the rest) is kept.
    """
    if stress_key is not None and virial_key is not None:
        raise ValueError("give stress_key or virial_key, not both")
    path, selected = split_selection(path)
    if selected is not None and index is not None:
        raise ValueError(f"{path}@{selected}: configurations chosen twice (after '@' and as index "
                         f"{index!r}); give one")
    index = selected if selected is not None else (":" if index is None else index)
    if is_mlearn_file(path, format):
        structures = read_mlearn(path)
        try:
            positions = selected_positions(len(structures), index)
        except IndexError:
            raise ValueError(f"{path}: index {index!r} is out of range ({len(structures)} "
                             "configurations)") from None
        return [structures[i] for i in positions]
    selection = string2index(index) if isinstance(index, str) else index
    backward = isinstance(selection, slice) and (selection.step or 1) < 0
    try:
        # ASE gives nothing for most backward slices ("19:13:-3"): read all and select here
        structures = ase.io.read(path, index=":" if backward else index, format=format,
                                 do_not_split_by_at_sign=True)
        if backward:
            structures = [structures[i] for i in selected_positions(len(structures), selection)]
    except (FileNotFoundError, IsADirectoryError):
        raise
    except Exception as error:  # ASE raises many kinds for a malformed file
        raise ValueError(f"{path}: cannot read structures ({type(error).__name__}: {error})") from error
    if isinstance(structures, Atoms):
        structures = [structures]
    for position, atoms in enumerate(structures):
        try:
            _attach_labels(atoms, energy_key, forces_key, stress_key, virial_key)
        except _MissingLabel as error:
            configuration = _file_position(path, index, position, format)
            raise ValueError(f"{path}: configuration {configuration}: {error}") from None
    return list(structures)


# ----------------------------------------------------------------------------- write
def _column(name, values):
    """(Properties entry, per-atom text tokens) of one per-atom array, or None if not writable."""
    values = np.asarray(values)
    values = values.reshape(len(values), -1) if values.ndim > 1 else values.reshape(-1, 1)
    kind = values.dtype.kind
    if kind == "f":
        type_code, tokens = "R", [[repr(float(v)) for v in row] for row in values]
    elif kind in "iu":
        type_code, tokens = "I", [[str(int(v)) for v in row] for row in values]
    elif kind == "b":
        type_code, tokens = "L", [["T" if v else "F" for v in row] for row in values]
    elif kind in "USO" and all(isinstance(v, str) and v and not any(c.isspace() for c in v)
                               for v in values.ravel()):
        type_code, tokens = "S", [list(row) for row in values]
    else:
        return None
    return f"{name}:{type_code}:{values.shape[1]}", tokens


def _frame_text(atoms):
    """One extended XYZ frame; floats as their shortest exact decimal form."""
    energy, forces, stress = labels(atoms)
    info = {key: value for key, value in atoms.info.items() if key not in _FRAME_INFO_KEYS}
    columns = [_column("species", np.array(atoms.get_chemical_symbols())),
               _column("pos", atoms.positions)]
    if energy is not None:
        info["energy"] = energy
    if stress is not None:
        info["stress"] = matrix_from_voigt(stress)  # ASE reads a 3×3 stress back as Voigt
    if forces is not None:
        columns.append(_column("forces", forces))
    for name, values in atoms.arrays.items():
        if name in _FRAME_ARRAY_KEYS or (name == "forces" and forces is not None):
            continue
        column = _column(name, values)
        if column is not None:
            columns.append(column)
    header = []
    if atoms.cell.any():
        header.append('Lattice="' + " ".join(repr(float(v)) for v in atoms.cell.array.ravel()) + '"')
    header.append("Properties=" + ":".join(entry for entry, _ in columns))
    if info:
        header.append(key_val_dict_to_str(info))
    header.append('pbc="' + " ".join("T" if p else "F" for p in atoms.pbc) + '"')
    lines = [str(len(atoms)), " ".join(header)]
    for atom in range(len(atoms)):
        lines.append(" ".join(token for _, tokens in columns for token in tokens[atom]))
    return "\n".join(lines) + "\n"


def write(path, atoms_list):
    """Write structures and their reference labels (see ``labels``) as extended XYZ.

    Energy (eV) and stress (eV/Å³, written as a 3×3 matrix) go in the comment line,
    forces (eV/Å) in a per-atom ``forces`` column, with ``atoms.info`` and other
    per-atom arrays. Numbers are written in their shortest exact form, so ``read``
    gives back identical positions, cell and labels. Results of a calculator that is
    not a SinglePointCalculator are not written.
    """
    if isinstance(atoms_list, Atoms):
        atoms_list = [atoms_list]
    text = "".join(_frame_text(atoms) for atoms in atoms_list)
    Path(path).write_text(text)


def append(path, atoms):
    """Append one structure with its labels to an extended XYZ file (as ``write``), flushed
    and synced to disk before returning: an append-only record that survives a crash."""
    with open(path, "a") as stream:
        stream.write(_frame_text(atoms))
        stream.flush()
        os.fsync(stream.fileno())


# ----------------------------------------------------------------------------- mlearn
# Component order of outputs.virial_stress in the mlearn files. The data README says
# [xx, yy, zz, xy, yz, xz], but checking the stresses against the cells' shear strains
# (Elastic group) and against a pair potential fitted to the forces (other groups) shows
# that entries 4 and 5 are xz and yz, except in the Si Elastic group (tests/test_io.py).
_MLEARN_ORDER = ("xx", "yy", "zz", "xy", "xz", "yz")
_MLEARN_ORDER_EXCEPTIONS = {("Si", "Elastic"): ("xx", "yy", "zz", "xy", "yz", "xz")}


def _voigt_positions(order):
    """For each ASE Voigt component, its position in a 6-list ordered as ``order``."""
    names = order.split() if isinstance(order, str) else list(order)
    canonical = ["".join(sorted(name.lower())) for name in names]
    wanted = ["xx", "yy", "zz", "yz", "xz", "xy"]
    if len(names) != 6 or sorted(canonical) != sorted(wanted):
        raise ValueError(f"virial_order must name the six components xx yy zz yz xz xy once each, "
                         f"got {order!r}")
    return [canonical.index(name) for name in wanted]


def _mlearn_atoms(entry, virial_order):
    structure = entry["structure"]
    sites = structure["sites"]
    atoms = Atoms([site["species"][0]["element"] for site in sites],
                  positions=[site["xyz"] for site in sites],
                  cell=structure["lattice"]["matrix"], pbc=True)
    if "num_atoms" in entry and int(entry["num_atoms"]) != len(atoms):
        raise _MissingLabel(f"num_atoms is {entry['num_atoms']} but the structure has "
                            f"{len(atoms)} sites")
    outputs = entry["outputs"]
    results = {"energy": float(outputs["energy"]),
               "forces": np.asarray(outputs["forces"], dtype=np.float64).reshape(len(atoms), 3)}
    if outputs.get("virial_stress") is not None:
        element = entry.get("element") or (atoms.get_chemical_symbols() or [None])[0]
        order = virial_order or _MLEARN_ORDER_EXCEPTIONS.get((element, entry.get("group")),
                                                             _MLEARN_ORDER)
        virial_stress = np.asarray(outputs["virial_stress"], dtype=np.float64).reshape(6)
        # VASP's sign (compressive positive, kBar) to ASE's (tensile positive, eV/Å³)
        results["stress"] = -virial_stress[_voigt_positions(order)] * KBAR
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info["config_type"] = str(entry.get("group", "default"))
    return atoms


def read_mlearn(path, virial_order=None):
    """Structures of an mlearn benchmark JSON file with their DFT labels.

    The file is a list of entries: ``structure`` (a pymatgen Structure dict, Å),
    ``outputs.energy`` (eV), ``outputs.forces`` (eV/Å), ``outputs.virial_stress``
    (kBar, VASP's sign: compressive positive), ``group``. Returns periodic Atoms with
    a SinglePointCalculator (energy eV, forces eV/Å, stress eV/Å³ in ASE's sign and
    Voigt order: -virial_stress · 0.1 / 160.21766208) and ``info["config_type"]`` =
    group.

    virial_order : None for the order found in the Mo and Si files ([xx, yy, zz, xy,
        xz, yz], [xx, yy, zz, xy, yz, xz] for the Si Elastic group; see the comment
        above ``_MLEARN_ORDER``), or six component names ("xx yy zz xy yz xz") to
        use for every entry.
    """
    if virial_order is not None:
        _voigt_positions(virial_order)  # fail early on a malformed order
    try:
        entries = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not an mlearn JSON file (invalid JSON: {error})") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: not an mlearn JSON file (expected a list of entries, found "
                         f"{type(entries).__name__})")
    structures = []
    for index, entry in enumerate(entries):
        try:
            structures.append(_mlearn_atoms(entry, virial_order))
        except (KeyError, IndexError, TypeError, ValueError, _MissingLabel) as error:
            problem = f"missing {error}" if isinstance(error, KeyError) else str(error)
            raise ValueError(f"{path}: configuration {index}: not an mlearn entry ({problem})") from None
    return structures
