"""gapfit: Gaussian Approximation Potentials fitted by sparse GP regression, with numba kernels.

Public names: GAP, ACSF, SOAP, TwoBody, ZBL, GAPCalculator, load, io, metrics.
"""
__version__ = "0.1.0"

from . import io, metrics  # noqa: E402
from .baselines import ZBL  # noqa: E402
from .calculator import GAPCalculator  # noqa: E402
from .model import GAP  # noqa: E402
from .persistence import ModelFileError, load_model as load  # noqa: E402
from .terms import ACSF, SOAP, TwoBody  # noqa: E402
from . import active  # noqa: E402

__all__ = ["GAP", "ACSF", "SOAP", "TwoBody", "ZBL", "GAPCalculator", "ModelFileError", "load", "io", "metrics", "active",
           "__version__"]
