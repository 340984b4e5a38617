"""DistributedDataParallel under ``torchrun``: gloo on CPU, NCCL on GPUs.

``torchrun --nproc_per_node=2 -m lstmkit train ...`` (or the ``lstmkit`` script) sets
RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT; without them everything here is a no-op.
Multi-node runs use torchrun's rendezvous (``--nnodes N --rdzv-backend c10d
--rdzv-endpoint HOST:PORT``) with the same entry point.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str) -> tuple[int, int]:
    """(rank, world size), initialising the process group when launched by torchrun."""
    world = world_size()
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), world


def ranks_in_sync(model: torch.nn.Module) -> bool:
    """True if every rank holds bit-identical parameters (compared by a float64 checksum pair)."""
    if not dist.is_initialized():
        return True
    with torch.no_grad():
        flat = torch.cat([p.detach().double().flatten().cpu() for p in model.parameters()])
        mine = torch.stack([flat.sum(), (flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64)).sum()])
    gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def teardown() -> None:
    """Barrier, then destroy: without the barrier a rank can abort at exit (seen with gloo)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
