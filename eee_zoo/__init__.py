"""eee-zoo: a RobustBench-compatible model zoo of multi-resolution self-ensembles.

Fort & Lakshminarayanan, "Ensemble everything everywhere: Multi-scale aggregation for adversarial
robustness", arXiv:2408.05446.
"""

from .models import MultiResolutionStack, SelfEnsemble, crossmax

__version__ = "0.1.0"

__all__ = ["MultiResolutionStack", "SelfEnsemble", "crossmax", "__version__"]
