"""A torchrun worker that joins its process group by plain ``env://`` instead of resnetlab's per-restart key
prefix on the agent's store: the comparison run by ``torchrun_restarts.py --rendezvous env``."""

import sys

from resnetlab.cli import main
from resnetlab.train import distributed

distributed._store = lambda world, timeout: None  # init_process_group(store=None): env://, torchrun's default

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
