"""``python -m resnetlab``: the command line (also as torchrun's module: ``torchrun -m resnetlab train ...``)."""

import sys

from .cli import main

sys.exit(main())
