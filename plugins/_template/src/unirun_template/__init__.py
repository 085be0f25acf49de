"""A unirun backend plugin skeleton: ``unirun.load(model, backend="template")``.

Importing this package does not import the engine; it loads on first use.
"""

from .backend import TemplateBackend
from .options import TemplateOptions

__version__ = "0.1.0"
__all__ = ["TemplateBackend", "TemplateOptions", "__version__"]
