"""gap_fit models read by gapfit.quip_xml and evaluated with the record: agreement with quippy.

    python benchmarks/quip_xml_agreement.py                  # the four recipes, 3 test cells each
    python benchmarks/quip_xml_agreement.py --n-train 20 --n-test 5

For each recipe of benchmarks/_quip_features.py (2b + soap; 2b + 3b + soap; Cu-Au 2b + soap
with per-species e0; pp kernels with signal means + soap with covariance_sigma0) gap_fit fits
data/<set>_train.xyz[:n], the model is read with ``gapfit.quip_xml.read_gap_xml``, evaluated
with quippy's Descriptor features and ``gapfit.quip_kernels`` (energy, forces, stress), and
compared with ``quippy.potential.Potential`` on rattled test cells; then written back with
``write_gap_xml`` and reloaded by quippy.  Prints the largest relative deviations.  Needs
``pip install quippy-ase``.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._quip_features import (RECIPES, fit_gap_fit, fresh_structures,  # noqa: E402
                                       quippy_prediction, record_prediction)
from benchmarks._quip_reference import have_quip  # noqa: E402
from gapfit.model.quip_xml import read_gap_xml, write_gap_xml  # noqa: E402


def _deviation(ours, reference):
    (energy, forces, stress), (ref_energy, ref_forces, ref_stress) = ours, reference
    return np.array([abs(energy - ref_energy) / abs(ref_energy),
                     np.max(np.abs(forces - ref_forces)) / np.max(np.abs(ref_forces)),
                     np.max(np.abs(stress - ref_stress)) / np.max(np.abs(ref_stress))])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=10, help="training configurations")
    parser.add_argument("--n-test", type=int, default=3, help="rattled test configurations")
    arguments = parser.parse_args(argv)
    if not have_quip():
        raise SystemExit("quippy-ase is not installed (pip install quippy-ase)")
    header = (f"{'recipe':<16} {'coords':>6}  {'record vs quippy: E':>19} {'F':>8} {'stress':>8}"
              f"  {'written file in quippy vs record: E':>35} {'F':>8} {'stress':>8}")
    print(header)
    for name, (data_name, terms, extra) in RECIPES.items():
        workdir = Path(tempfile.mkdtemp(prefix="quip_xml_"))
        path = fit_gap_fit(workdir / "fit", data_name, terms, extra, n_configurations=arguments.n_train)
        model = read_gap_xml(path)
        (workdir / "written").mkdir()
        written = write_gap_xml(model, workdir / "written" / "model.xml")
        read_worst, write_worst = np.zeros(3), np.zeros(3)
        for atoms in fresh_structures(data_name, n=arguments.n_test):
            ours = record_prediction(model, atoms)
            read_worst = np.maximum(read_worst, _deviation(ours, quippy_prediction(path, atoms)))
            write_worst = np.maximum(write_worst, _deviation(quippy_prediction(written, atoms), ours))
        print(f"{name:<16} {len(model.coordinates):>6}  {read_worst[0]:>19.1e} {read_worst[1]:>8.1e} "
              f"{read_worst[2]:>8.1e}  {write_worst[0]:>35.1e} {write_worst[1]:>8.1e} "
              f"{write_worst[2]:>8.1e}")
    print("relative deviations: energy |ΔE|/|E|; forces and stress max|Δ| / max|reference|")


if __name__ == "__main__":
    main()
