"""gapfit: Gaussian Approximation Potentials fitted by sparse GP regression, with numba kernels.

Public names: GAP, ACSF, SOAP, TwoBody, ZBL, QuipSOAP, QuipDistance2b, QuipAngle3b, GAPCalculator,
load, and the modules io, metrics,
active, sampling, hyperparameters, md and validate. The pipeline lives in subpackages:
structures → descriptors → gp → fit → predict → uncertainty → md → evaluate → model → active → cli.
"""
__version__ = "0.1.0"

from . import active, md  # noqa: E402
from .active import sampling  # noqa: E402
from .evaluate import errors as metrics  # noqa: E402
from .evaluate import physical as validate  # noqa: E402
from .fit.baselines import ZBL  # noqa: E402
from .model.estimator import GAP  # noqa: E402
from .model.loading import load  # noqa: E402
from .model.model_file import ModelFileError  # noqa: E402
from .model.quip_terms import QuipAngle3b, QuipDistance2b, QuipSOAP  # noqa: E402
from .model.terms import ACSF, SOAP, TwoBody  # noqa: E402
from .md.calculator import GAPCalculator  # noqa: E402
from .structures import io  # noqa: E402
from .uncertainty import hyperparameters  # noqa: E402

__all__ = ["GAP", "ACSF", "SOAP", "TwoBody", "ZBL", "QuipSOAP", "QuipDistance2b", "QuipAngle3b",
           "GAPCalculator", "ModelFileError", "load", "io",
           "metrics", "active", "sampling", "hyperparameters", "md", "validate", "__version__"]
