"""Fit time of the default recipe on mlearn data: this gapfit against an older source tree, same run.

    git archive d75a0f9 | tar -x -C /tmp/gapfit_before        # the tree before the regrouping
    python benchmarks/fit_speed.py --before /tmp/gapfit_before  # Mo, 3 alternating rounds
    python benchmarks/fit_speed.py --before /tmp/gapfit_before --element Si --rounds 2

Every fit runs in its own process (``PYTHONPATH`` choosing the gapfit tree) on ``--threads``
threads (numba and BLAS), reads the whole training set, fits ``TwoBody() + SOAP()`` with
``random_state=0`` and reports its wall and CPU time (this process, all threads) and the test
energy / force / stress MAE. Rows: ``before`` (the older tree with its defaults), ``after`` (this
tree with its defaults: since the older tree, the default fit also finds the evidence scale of
the noise and learns the cheap force score, and subtracts the ZBL baseline) and ``after, old
defaults`` (this tree with ``optimize_hyperparameters=False, repulsion=None``: the same work
as the older tree, so the code alone is compared). The trees alternate and the best of
``--rounds`` is shown: on a shared machine only such interleaved minima compare.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
THIS_TREE = Path(__file__).resolve().parents[1]


def fit_once(element, old_defaults, data_dir):
    """Child process: one fit; prints a JSON line with times (s) and test MAEs."""
    import time
    import gapfit
    train = gapfit.io.read_mlearn(data_dir / f"{element}_train.json")
    test = gapfit.io.read_mlearn(data_dir / f"{element}_test.json")
    settings = {"optimize_hyperparameters": False, "repulsion": None} if old_defaults else {}
    model = gapfit.GAP(terms=[gapfit.TwoBody(), gapfit.SOAP()], random_state=0, **settings)
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(train)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    errors = gapfit.metrics.evaluate(model, test)
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "errors": errors}, default=float))


def run_tree(tree, element, old_defaults, threads, data_dir):
    command = [sys.executable, str(Path(__file__).resolve()), "--child", element,
               "--data-dir", str(data_dir)] + (["--old-defaults"] if old_defaults else [])
    environment = dict(os.environ, PYTHONPATH=str(tree), NUMBA_NUM_THREADS=str(threads),
                       OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    output = subprocess.run(command, env=environment, check=True, capture_output=True,
                            text=True).stdout
    return json.loads(output.splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an older gapfit source tree")
    parser.add_argument("--element", default="Mo")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=MLEARN)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--old-defaults", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        fit_once(args.child, args.old_defaults, args.data_dir)
        return 0
    if not (args.data_dir / f"{args.element}_train.json").is_file():
        print(f"skipped: {args.data_dir} has no {args.element}_train.json (the mlearn data live "
              "in ../shared/data/mlearn)")
        return 0
    import gapfit
    if args.before is None:
        parser.error("--before TREE is needed (e.g. git archive d75a0f9 | tar -x -C TREE)")
    rows = {"before": (args.before.resolve(), False), "after": (THIS_TREE, False),
            "after, old defaults": (THIS_TREE, True)}
    best = {}
    for round_index in range(args.rounds):
        for name, (tree, old_defaults) in rows.items():
            result = run_tree(tree, args.element, old_defaults, args.threads, args.data_dir)
            print(f"round {round_index + 1} {name:<22} wall {result['wall_s']:7.1f} s  "
                  f"cpu {result['cpu_s']:7.1f} s", flush=True)
            previous = best.get(name)
            if previous is None or result["cpu_s"] < previous["cpu_s"]:
                best[name] = result
    print(f"\n{args.element}, TwoBody() + SOAP(), {args.threads} thread(s), best of {args.rounds} "
          f"alternating rounds")
    print(f"{'':<24}{'wall s':>9}{'cpu s':>9}{'cpu / before':>14}{'E meV/atom':>12}"
          f"{'F meV/Å':>10}{'S GPa':>8}")
    for name, result in best.items():
        # error_table's first row: ("all", E MAE, E RMSE, F MAE, F RMSE, S MAE, S RMSE)
        energy, force, stress = gapfit.metrics.error_table(result["errors"])[0][1::2][:3]
        print(f"{name:<24}{result['wall_s']:>9.1f}{result['cpu_s']:>9.1f}"
              f"{result['cpu_s'] / best['before']['cpu_s']:>14.2f}{energy:>12.2f}{force:>10.1f}"
              f"{stress:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
