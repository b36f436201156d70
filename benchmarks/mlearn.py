"""Fit the default recipe on the mlearn Mo and Si training sets; print test errors, fit time, peak memory.

    python benchmarks/mlearn.py                 # Mo and Si, default recipe (2-body + SOAP)
    python benchmarks/mlearn.py --elements Mo --descriptor acsf
    python benchmarks/mlearn.py --save-dir models/   # also write the fitted models

Data: ../shared/data/mlearn (Zuo et al., J. Phys. Chem. A 124, 731 (2020)). Each fit runs in
a fresh process so its peak RSS is its own.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory import measure_call  # noqa: E402

MLEARN = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlearn"
# targets from the issue (test MAE): energy meV/atom, force meV/Å, stress GPa
TARGETS = {"Mo": (3.0, 100.0, 0.5), "Si": (3.5, 90.0, None)}


def build_model(descriptor, n_sparse, random_state=0):
    import gapfit
    if descriptor == "soap":
        return gapfit.GAP(terms=[gapfit.TwoBody(), gapfit.SOAP(n_sparse=n_sparse)],
                          random_state=random_state)
    if descriptor == "acsf":
        return gapfit.GAP(terms=[gapfit.TwoBody(), gapfit.ACSF(n_sparse=n_sparse)],
                          random_state=random_state)
    raise ValueError(f"unknown descriptor {descriptor!r}")


def fit_and_evaluate(element, descriptor, n_sparse, save_dir=None):
    """Runs in a child process: fit on train, evaluate on test, return the error dict and fit time."""
    import time
    import gapfit
    train = gapfit.io.read_mlearn(MLEARN / f"{element}_train.json")
    test = gapfit.io.read_mlearn(MLEARN / f"{element}_test.json")
    model = build_model(descriptor, n_sparse)
    start = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - start
    if save_dir is not None:
        model.save(Path(save_dir) / f"{element}_{descriptor}.gap")
    return {"fit_s": fit_seconds, "test": gapfit.metrics.evaluate(model, test),
            "train": gapfit.metrics.evaluate(model, train)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", nargs="+", default=["Mo", "Si"])
    parser.add_argument("--descriptor", choices=["soap", "acsf"], default="soap")
    parser.add_argument("--n-sparse", type=int, default=1000)
    parser.add_argument("--save-dir", default=None)
    args = parser.parse_args(argv)
    if not MLEARN.is_dir():
        print(f"skipped: mlearn data not found at {MLEARN}")
        return 0
    from gapfit.metrics import error_table
    header = (f"{'set':<16}{'E MAE':>8}{'E RMSE':>8}{'F MAE':>8}{'F RMSE':>8}{'S MAE':>7}{'S RMSE':>7}")
    failures = []
    for element in args.elements:
        result, wall, peak = measure_call(fit_and_evaluate, element, args.descriptor, args.n_sparse,
                                          args.save_dir)
        print(f"\n{element} ({args.descriptor}, n_sparse={args.n_sparse}): fit {result['fit_s']:.1f} s,"
              f" fit+evaluate wall {wall:.1f} s, peak RSS {peak:.0f} MB")
        print("units: meV/atom, meV/Å, GPa (test set unless marked train)")
        print(header)
        for row in error_table(result["test"]) + [("train",) + error_table(result["train"])[0][1:]]:
            print(f"{row[0]:<16}" + "".join(f"{v:8.2f}" if i < 4 else f"{v:7.3f}"
                                             for i, v in enumerate(row[1:])))
        overall = error_table(result["test"])[0]
        target = TARGETS.get(element)
        if target and args.descriptor == "soap":
            checks = [("energy MAE", overall[1], target[0]), ("force MAE", overall[3], target[1]),
                      ("stress MAE", overall[5], target[2])]
            for name, value, limit in checks:
                if limit is not None:
                    verdict = "ok" if value <= limit else "MISSED"
                    print(f"target {name} <= {limit}: {value:.3f} {verdict}")
                    if value > limit:
                        failures.append(f"{element} {name}")
    if failures:
        print("\nmissed targets: " + ", ".join(failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
