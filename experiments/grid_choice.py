"""Research (issue 16, helper recipe3): the sigma grid point CV would choose (score = mean of the
CV E, F, S MAE ratios to the grid's (1, 1, 1) point; training data only), and its test MAEs.

    python experiments/grid_choice.py /tmp/h16/*.pkl
"""
import pickle
import sys

from stress_analysis import maes, select


def main(paths):
    print("| run | chosen σ factors | CV score | CV E / F / S | test E / F / S | test at σ×1 |")
    print("|---|---|---|---|---|---|")
    for path in paths:
        d = pickle.load(open(path, "rb"))
        rows = d["rows"]
        ref = maes(select(rows, "cv"))
        scored = []
        for g in d["grid"]:
            cv = maes(select(rows, "cv", g))
            scored.append((sum(c / r for c, r in zip(cv, ref)) / 3, g, cv))
        score, g, cv = min(scored)
        t, t1 = maes(select(rows, "test", g)), maes(select(rows, "test"))
        print(f"| {path.split('/')[-1][:-4]} | {g} | {score:.3f} | {cv[0]:.2f} / {cv[1]:.1f} / {cv[2]:.3f} "
              f"| {t[0]:.2f} / {t[1]:.1f} / {t[2]:.3f} | {t1[0]:.2f} / {t1[1]:.1f} / {t1[2]:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
