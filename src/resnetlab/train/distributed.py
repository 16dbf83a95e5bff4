"""Data-parallel runs under ``torchrun``: which process this is, the process group, and the few
collectives the loop needs. One process per rank; rank 0 alone writes (as nanoGPT's
``master_process``), and every decision taken from training numbers comes from an all-reduce, so that
all ranks take it together."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import UsageError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The one process that logs, evaluates and writes checkpoints."""
        return self.rank == 0

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        """``values`` summed over every rank (float64), in one all-reduce; as given in a 1-process run."""
        if self.size == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()


ONE_PROCESS = World()


def world_from_env() -> World:
    """``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as torchrun sets them; one process without them."""
    try:
        world = World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                      int(os.environ.get("LOCAL_RANK", 0)))  # fmt: skip
    except ValueError:
        raise UsageError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them)") from None
    if world.size < 1 or not 0 <= world.rank < world.size:
        raise UsageError(f"RANK {world.rank} is outside WORLD_SIZE {world.size}")
    return world


def under_torchrun() -> bool:
    """Whether torchrun (its elastic agent) started this process, with any number of processes."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def resume_after_restart(world: World, out: str | None) -> str | None:
    """The run folder a torchrun worker continues, as ``--resume`` would: ``out`` when torchrun restarted the
    worker group (``--max-restarts``) and the run there has started. Under torchrun ``--out`` is required,
    with any number of processes: a restarted group must find the same folder."""
    if (world.size > 1 or under_torchrun()) and out is None:
        raise UsageError("under torchrun give --out: every process, and a restarted one, must find the same run folder")
    if restart_count() > 0 and out is not None and (Path(out) / "config.json").is_file():
        marker = Path(out) / "diverged.json"  # train.state.DIVERGED
        if marker.is_file():  # a restart would replay the divergence: every restart ends here, at once
            raise UsageError(f"{out} diverged ({marker}); torchrun does not restart it: train it again with "
                             f"another --lr, or continue it with --resume {out} to replay it")  # fmt: skip
        return out
    return None


def restart_count() -> int:
    """How often torchrun has restarted this worker group (``--max-restarts``): 0 on the first start."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0) or 0)


def start(world: World, device: torch.device, timeout_s: int) -> torch.device:
    """Join the process group (gloo on CPU, NCCL on CUDA) with a bounded timeout for every collective,
    so that a lost rank stops the others within ``timeout_s`` instead of torch's default 30 minutes.
    Returns this rank's device (``cuda:LOCAL_RANK`` on GPUs)."""
    if world.size == 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    timeout = timedelta(seconds=timeout_s)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, store=_store(world, timeout), rank=world.rank, world_size=world.size,
                            timeout=timeout)  # fmt: skip
    return device


def _store(world: World, timeout: timedelta) -> dist.Store:
    """The rendezvous store (torchrun's ``MASTER_ADDR:MASTER_PORT``), its keys prefixed by the restart count.

    torchrun keeps one store for all restarts of a worker group (its agent hosts it), and every process
    group publishes its ranks' addresses under the same keys: a restarted rank 0 could read the address
    of the killed rank 1 before the new rank 1 overwrote it, and gloo's connectFullMesh then failed with
    "Connection refused" (docs/distributed.md#faults). A prefix per restart makes those keys new."""
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not addr or not port:
        raise UsageError("MASTER_ADDR and MASTER_PORT are not set: start the processes with torchrun")
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # the agent hosts it; else rank 0 does
    store = dist.TCPStore(addr, int(port), world.size, is_master=not agent and world.rank == 0, timeout=timeout)
    return dist.PrefixStore(f"resnetlab/{os.environ.get('TORCHELASTIC_RUN_ID', '')}/{restart_count()}", store)


def stop(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
