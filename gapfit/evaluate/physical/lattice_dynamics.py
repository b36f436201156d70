"""Phonons by finite displacements (ASE's ``Phonons``): dispersion along the band path, DOS and
frequencies at the special points, in THz (imaginary frequencies as negative numbers)."""
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import units

from .cells import repeat_for_width


EV_PER_THZ = units._hplanck / units._e * 1e12  # phonon energy (eV) of one THz


@dataclass
class PhononResult:
    """Phonons by finite displacements (ASE's ``Phonons``), frequencies in THz (imaginary < 0).

    path : ase BandPath. distances, special_distances : x-axis of the dispersion (1/Å).
    band_frequencies : (n_kpoints, n_modes) THz along the path.
    dos_frequencies, dos : THz and states/THz (integrates to 3 × atoms per cell).
    special_points : {label: (n_modes,) THz} at the path's special points.
    """

    path: object
    distances: np.ndarray
    special_distances: np.ndarray
    band_frequencies: np.ndarray
    dos_frequencies: np.ndarray
    dos: np.ndarray
    special_points: dict
    force_constants: object = field(default=None, repr=False)  # the ase.phonons.Phonons, read

    def frequencies(self, qpoints):
        """Frequencies (THz, imaginary < 0) at q-points given in the primitive cell's scaled
        reciprocal coordinates, shape (n_q, 3); returns (n_q, n_modes)."""
        qpoints = np.atleast_2d(np.asarray(qpoints, dtype=np.float64))
        return self.force_constants.band_structure(qpoints, verbose=False) / EV_PER_THZ

    @property
    def min_frequency(self):
        """Lowest frequency on the path (THz); clearly negative means an unstable mode."""
        return float(self.band_frequencies.min())


def phonons(calculator, atoms, supercell=None, min_width=10.0, delta=0.01, npoints=100,
            dos_kpoints=(20, 20, 20), dos_width=0.1):
    """Phonon dispersion along the cell's standard band path and the phonon DOS.

    atoms : the primitive cell is best (the band path is that of its lattice).
    supercell : repetition for the force constants; default one at least ``min_width`` Å thick.
    delta : displacement, Å. dos_width : Gaussian smearing of the DOS, THz.
    ASE's displacement files go to a temporary folder that is removed afterwards.
    """
    from ase.phonons import Phonons
    primitive = atoms.copy()
    primitive.calc = None
    supercell = tuple(supercell) if supercell is not None else repeat_for_width(primitive, min_width)
    path = primitive.cell.bandpath(npoints=npoints)
    with tempfile.TemporaryDirectory(prefix="gapfit_phonons_") as folder:
        phonon = Phonons(primitive, calculator, supercell=supercell, delta=delta,
                         name=str(Path(folder) / "phonon"))
        phonon.run()
        phonon.read(acoustic=True)
        bands = phonon.band_structure(path.kpts, verbose=False) / EV_PER_THZ
        labels_ = list(path.special_points)
        special = phonon.band_structure(np.array([path.special_points[k] for k in labels_]),
                                        verbose=False) / EV_PER_THZ
        top = max(float(bands.max()), 1e-3) * EV_PER_THZ * 1.1
        dos = phonon.get_dos(kpts=dos_kpoints, verbose=False).sample_grid(
            npts=400, xmin=0.0, xmax=top, width=dos_width * EV_PER_THZ)
    distances, special_distances, _ = path.get_linear_kpoint_axis()
    return PhononResult(path, distances, special_distances, bands,
                        dos.get_energies() / EV_PER_THZ, dos.get_weights() * EV_PER_THZ,
                        {label: special[i] for i, label in enumerate(labels_)}, phonon)
