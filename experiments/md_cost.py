"""MD µs/atom of candidate recipes, timed interleaved in one process (one thread): each recipe
is fitted to every 4th training configuration (enough environments for its sparse points; the
MD cost does not depend on the labels), then rounds of energy+forces+stress calls on a rattled
128-atom bcc Mo / 216-atom diamond Si cell; reported: median over rounds of the best of 3.
    python experiments/md_cost.py Mo"""
import sys
import time

import numpy as np

import gapfit
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from structural import MLEARN, interleaved_md_times, md_cell, terms_of  # noqa: E402
from gapfit.predict.predictor import StructurePredictor  # noqa: E402

element = sys.argv[1]
names = sys.argv[2:] or ["default", "cos+ns1500", "cos+ns1500+rc4.78", "cos+ns1500+rc5.3",
                         "cos+ns1500+rc5.82", "default+ns1500+rc5.3", "cos+l8", "quip",
                         "cos+ns2500", "cos+ns1500+rc4.26", "cos+ns1500+rc4.72", "cos+ns1500+rc5.18",
                         "default+ns1500+rc4.72"]
train = gapfit.io.read_mlearn(MLEARN / f"{element}_train.json")[::4]
cell = md_cell(element)
cell.rattle(0.05, seed=1)
predictors = {}
for name in names:
    terms, kw = terms_of(name)
    kw.pop("config_type_sigma", None)
    model = gapfit.GAP(terms=terms, random_state=0, **kw).fit(train)
    predictors[name] = StructurePredictor.from_model(model)
rounds = interleaved_md_times(predictors, cell)
import os
reference = np.median(rounds["default"])
print(f"{element}: {len(cell)}-atom cell, one thread, load {os.getloadavg()[0]:.1f}")
for name in names:
    value = np.median(rounds[name])
    print(f"| {name} | {value:.0f} | {value / reference:.2f} | {min(rounds[name]) / min(rounds['default']):.2f} |")
