"""MD with a GAP, then structure and dynamics: radial distribution function and mean-square displacement.

    python examples/md_analysis.py                         # fits a model first (about 10 s)
    python examples/md_analysis.py --model cu.gap --temperature 900 --steps 2000
    python examples/md_analysis.py --steps 40 --interval 5 --n-sparse 50     # a quick look

Writes to --output-dir: md.xyz (trajectory), md.log, rdf.png, msd.png and md.png
(temperature and energy against time), and prints the first RDF peak and the MSD plateau.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from ase.build import bulk

import gapfit
from gapfit.md.dynamics import mean_square_displacement, radial_distribution, run_md, summarise_md
from gapfit.evaluate.plots import plot_md_log, plot_msd, plot_rdf

DATA = Path(__file__).resolve().parents[1] / "data"


def quick_model(n_sparse, seed):
    """A 2-body + SOAP model of EMT copper (data/cu_train.xyz)."""
    train = gapfit.io.read(DATA / "cu_train.xyz")
    model = gapfit.GAP(terms=[gapfit.TwoBody(), gapfit.SOAP(n_max=6, l_max=4, n_sparse=n_sparse)],
                       random_state=seed)
    return model.fit(train)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: fit one on data/cu_train.xyz)")
    parser.add_argument("--n-sparse", type=int, default=300, help="SOAP sparse points of that fit")
    parser.add_argument("--repeat", type=int, default=3, help="fcc Cu supercell of N×N×N cubic cells")
    parser.add_argument("--temperature", type=float, default=600.0, help="K (default 600)")
    parser.add_argument("--steps", type=int, default=1000, help="2 fs Langevin steps (default 1000)")
    parser.add_argument("--interval", type=int, default=10, help="steps between frames (default 10)")
    parser.add_argument("--r-max", type=float, default=6.0, help="RDF range, Å (default 6)")
    parser.add_argument("--output-dir", type=Path, default=Path("md_analysis"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = gapfit.load(args.model) if args.model else quick_model(args.n_sparse, args.seed)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    atoms = bulk("Cu", "fcc", a=3.59, cubic=True).repeat(args.repeat)
    result = run_md(atoms, gapfit.GAPCalculator(model), ensemble="nvt", steps=args.steps,
                    timestep_fs=2.0, temperature_K=args.temperature, friction_per_fs=0.02,
                    interval=args.interval, seed=args.seed, keep_frames=True,
                    trajectory=args.output_dir / "md.xyz", logfile=args.output_dir / "md.log")
    summary = summarise_md(result.log)
    print(f"NVT MD, {len(atoms)} atoms, {summary['duration_ps']:.2f} ps: T = "
          f"{summary['temperature_mean_K']:.0f} ± {summary['temperature_std_K']:.0f} K, "
          f"<P> = {summary['pressure_mean_GPa']:.2f} GPa")

    frames = result.frames[len(result.frames) // 2:]  # second half: after equilibration
    distances, rdf = radial_distribution(frames, args.r_max, n_bins=120)
    peak = distances[np.argmax(rdf)]
    print(f"RDF over {len(frames)} frames: first peak at {peak:.2f} Å "
          f"(ideal fcc nearest neighbour {3.59 / np.sqrt(2):.2f} Å), height {rdf.max():.1f}")
    lags, msd = mean_square_displacement(frames)
    print(f"MSD at the longest lag ({lags[-1]:.2f} ps): {msd[-1]:.4f} Å² "
          "(a plateau means a solid: atoms vibrate about their sites)")
    for path in (plot_rdf(distances, rdf, args.output_dir / "rdf.png",
                          title=f"Cu at {args.temperature:g} K (GAP)"),
                 plot_msd(lags, msd, args.output_dir / "msd.png"),
                 plot_md_log(result.log, args.output_dir / "md.png")):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
