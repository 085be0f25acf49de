"""``python -m unirun.testing.onnx_backend``: see the package docstring."""

import sys

from ._cli import main

sys.exit(main())
