"""armor: adversarial training and honest robustness evaluation on PyTorch."""
__version__ = "0.1.0"

from .attacks import ATTACKS, create_attack  # noqa: E402
from .config import TrainConfig  # noqa: E402
from .data import load_dataset  # noqa: E402
from .errors import UserError  # noqa: E402
from .eval import accuracy, evaluate  # noqa: E402
from .methods import METHODS, create_method  # noqa: E402
from .models import MODELS, create_model  # noqa: E402
from .threat import ThreatModel, parse_eps  # noqa: E402
from .train import train  # noqa: E402

__all__ = ["ATTACKS", "METHODS", "MODELS", "ThreatModel", "TrainConfig", "UserError", "accuracy",
           "create_attack", "create_method", "create_model", "evaluate", "load_dataset", "parse_eps", "train",
           "__version__"]
