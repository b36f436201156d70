"""Research (issue 16, helper recipe3): errors per config_type AND AIMD temperature (parsed from
the mlearn 'description'), from experiments/stress_fits.py output; plus the test stress MAE
without the 6000 K snapshots and each subset's share of the summed stress error.

    python experiments/stress_by_temperature.py Mo /tmp/h16/Mo_cos+ns1500.pkl
"""
import json
import pickle
import re
import sys

import numpy as np
from ase.units import GPa

GRIDS = [(1, 1, 1), (1, 0.6, 0.3), (1, 0.4, 0.3)]


def main(element, path):
    d = pickle.load(open(path, "rb"))
    base = f"/work/shared/data/mlearn/{element}"
    desc = {"train": [x["description"] for x in json.load(open(f"{base}_train.json"))],
            "test": [x["description"] for x in json.load(open(f"{base}_test.json"))]}
    desc["cv"] = desc["train"]
    for tag in ("test", "cv", "train"):
        for g in GRIDS:
            rs = [r for r in d["rows"] if r["set"] == tag and tuple(r["grid"]) == g]
            if not rs:
                continue
            total = sum(np.abs(np.asarray(r["s_pred"]) - r["s_ref"]).sum() for r in rs) / GPa
            print(f"\n## {tag} σ×{g}: | subset | n | E | F | S | S diag | S shear | hydro resid mean±sd "
                  f"| P_ref mean (sd) | share of S error |")
            by = {}
            for r in rs:
                m = re.search(r"(\d+) K", desc[tag][r["index"]])
                by.setdefault((r["group"], m.group(1) + " K" if m else "-"), []).append(r)
            for k, v in sorted(by.items()):
                sr = np.array([r["s_ref"] for r in v]) / GPa
                sp = np.array([r["s_pred"] for r in v]) / GPa
                h, p_ref = (sp - sr)[:, :3].mean(1), -sr[:, :3].mean(1)
                e = 1e3 * np.abs([r["e_pred"] - r["e_ref"] for r in v]).mean()
                f = 1e3 * sum(r["f_abs"] for r in v) / sum(r["f_n"] for r in v)
                print(f"| {k[0]} {k[1]} | {len(v)} | {e:.2f} | {f:.0f} | {np.abs(sp - sr).mean():.3f} "
                      f"| {np.abs(sp - sr)[:, :3].mean():.3f} | {np.abs(sp - sr)[:, 3:].mean():.3f} "
                      f"| {h.mean():+.3f}±{h.std():.3f} | {p_ref.mean():+.1f} ({p_ref.std():.1f}) "
                      f"| {np.abs(sp - sr).sum() / total:.2f} |")
            rest = [r for r in rs if "6000 K" not in desc[tag][r["index"]]]
            s = np.mean([np.abs(np.asarray(r["s_pred"]) - r["s_ref"]).mean() for r in rest]) / GPa
            e = 1e3 * np.mean([abs(r["e_pred"] - r["e_ref"]) for r in rest])
            f = 1e3 * sum(r["f_abs"] for r in rest) / sum(r["f_n"] for r in rest)
            print(f"without 6000 K ({len(rest)} of {len(rs)} configs): E {e:.2f} F {f:.1f} S {s:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
