"""korclf: fine-tune Korean text classifiers on the Hugging Face stack."""

__version__ = "0.1.0"

from .errors import KorclfError  # noqa: E402,F401

from . import models  # noqa: E402,F401  (registers korclf's model types with the Auto classes)
from .predict import predict  # noqa: E402,F401  (korclf.predict(model_dir, input_file, ...))
