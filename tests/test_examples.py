"""Every script in examples/ runs as a script, with options that shrink it, and prints sound results."""
import os
import re
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
MLEARN = REPO.parent / "shared" / "data" / "mlearn"


def run_example(name, *args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    process = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, (process.stdout, process.stderr)
    return process.stdout


def number_after(text, label):
    match = re.search(re.escape(label) + r"\s*([-+]?\d+(?:\.\d+)?)", text)
    assert match, (label, text)
    return float(match.group(1))


def test_quickstart(tmp_path):
    import gapfit
    out = run_example("quickstart.py", "--train-limit", "20", "--n-sparse", "30", "--md-steps", "20",
                      "--output", "q.gap", cwd=tmp_path)
    assert "fitted on 20 configurations (640 atoms)" in out
    all_row = next(line for line in out.splitlines() if line.startswith("all "))
    energy_mae, _, force_mae, _, stress_mae, _ = map(float, all_row.split()[1:])
    # EMT copper: even a tiny fit is far better than no model (forces of ~0.5 eV/Å)
    assert 0 < energy_mae < 5 and 0 < force_mae < 100 and 0 < stress_mae < 0.5
    assert "reloaded predictions identical: True" in out
    gapfit.load(tmp_path / "q.gap")
    assert 150 < number_after(out, "NVE: mean T") < 450
    assert abs(number_after(out, "total-energy drift")) < 5  # meV/atom/ps
    assert number_after(out, "force RMSE against EMT on the last frame:") < 150  # meV/Å


def test_mlearn_benchmark(tmp_path):
    out = run_example("mlearn_benchmark.py", "--element", "Mo", "--descriptor", "twobody",
                      "--train-limit", "20", "--test-limit", "6", "--save", "mo.gap", cwd=tmp_path)
    if not MLEARN.is_dir():
        assert out.startswith("skipped:")
        pytest.skip(f"mlearn data not found at {MLEARN}")
    assert "Mo: fitted twobody on 20 configurations" in out
    assert (tmp_path / "mo.gap").stat().st_size > 0
    all_row = next(line for line in out.splitlines() if line.startswith("all "))
    values = [float(v) for v in all_row.replace("|", " ").split()[1:]]
    assert values[0] == 6 and all(np.isfinite(values[1:3]))
    # the 2-body fit must beat the know-nothing model (zero forces) on the same 6 configurations
    import gapfit
    test = gapfit.io.read_mlearn(MLEARN / "Mo_test.json")[:6]
    zero_force_mae = 1e3 * np.mean(np.abs(np.concatenate([a.get_forces().ravel() for a in test])))
    assert 0 < values[4] < 0.7 * zero_force_mae  # force MAE meV/Å


def test_md_analysis(tmp_path):
    out = run_example("md_analysis.py", "--n-sparse", "30", "--repeat", "2", "--steps", "30",
                      "--interval", "5", "--r-max", "4.5", "--output-dir", "analysis", cwd=tmp_path)
    folder = tmp_path / "analysis"
    frames = ase.io.read(folder / "md.xyz", index=":")
    assert len(frames) == 7 and len(frames[0]) == 32
    # 60 fs from a perfect lattice: the first RDF peak sits at the fcc neighbour distance
    assert number_after(out, "first peak at") == pytest.approx(3.59 / np.sqrt(2), abs=0.1)
    assert 0 < number_after(out, "MSD at the longest lag (0.03 ps):") < 0.1
    for name in ("rdf.png", "msd.png", "md.png"):
        assert (folder / name).stat().st_size > 10_000, name


def test_active_learning(tmp_path):
    out = run_example("active_learning.py", "--start", "3", "--rounds", "2", "--batch", "3",
                      "--n-sparse", "30", cwd=tmp_path)
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    sizes = [int(row[0]) for row in rows]
    assert sizes == [3, 6, 9]
    active = [float(row[1]) for row in rows]
    random = [float(row[2]) for row in rows]
    assert active[0] == random[0]  # the same start
    # labelling more configurations makes the model better on the test set
    assert active[-1] < active[0] and random[-1] < random[0]
