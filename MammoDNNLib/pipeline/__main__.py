"""``python -m MammoDNNLib.pipeline --out DIR --version V --detector NAME ...``: write a system model folder
(see :func:`MammoDNNLib.pipeline.system.main`)."""

import sys

from .system import main

sys.exit(main())
