"""The synchronized BN on gloo (CPU): two processes with uneven batches compute what one process
computes over the concatenated batch, forward and backward, with identical running statistics."""

import copy
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from resnetlab.nn import BatchNorm1d, BatchNorm2d, SyncBatchNorm2d, convert_sync_batchnorm

SPLIT = (5, 8)  # rows of rank 0 and rank 1: uneven on purpose


def _inputs(shape):
    g = torch.Generator().manual_seed(0)
    x = 100 + 3 * torch.randn(sum(SPLIT), *shape, generator=g, dtype=torch.float64).float()  # |mean|/std ≈ 33
    upstream = torch.randn(sum(SPLIT), *shape, generator=g)
    return x, upstream


def _bn(shape):
    bn = BatchNorm2d(shape[0]) if len(shape) == 3 else BatchNorm1d(shape[0])
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 1.5, shape[0]))
        bn.bias.copy_(torch.linspace(-1, 1, shape[0]))
    return bn


def _worker(rank, path, shape, results, compiled=False):
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    x, upstream = _inputs(shape)
    lo = 0 if rank == 0 else SPLIT[0]
    rows = slice(lo, lo + SPLIT[rank])
    bn = convert_sync_batchnorm(_bn(shape))
    xr = x[rows].clone().requires_grad_(True)
    breaks = None
    if compiled:  # counted on a copy (explain runs the forward, which moves the running statistics)
        breaks = torch._dynamo.explain(copy.deepcopy(bn))(x[rows].clone()).graph_break_count
        torch._dynamo.reset()
    y = (torch.compile(bn, fullgraph=True) if compiled else bn)(xr)
    (y * upstream[rows]).sum().backward()
    torch.save({"y": y.detach(), "dx": xr.grad, "dw": bn.weight.grad, "db": bn.bias.grad,
                "mean": bn.running_mean, "var": bn.running_var, "breaks": breaks}, f"{results}.{rank}")  # fmt: skip
    dist.barrier()  # both ranks done with gloo before either tears it down (else, at times, SIGABRT)
    dist.destroy_process_group()


@pytest.mark.parametrize("shape,compiled", [((3, 4, 4), False), ((6,), False), ((3, 4, 4), True)])
@pytest.mark.slow
def test_two_processes_equal_one_over_the_concatenated_batch(tmp_path, shape, compiled):
    """Eager, and compiled whole (fullgraph: a graph break would fail it; none is counted)."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.start_processes(_worker, args=(str(tmp_path / "store"), shape, str(tmp_path / "out"), compiled), nprocs=2,
                       start_method="spawn")  # fmt: skip
    parts = [torch.load(f"{tmp_path / 'out'}.{r}") for r in (0, 1)]
    assert all(p["breaks"] == (0 if compiled else None) for p in parts)
    x, upstream = _inputs(shape)
    bn = _bn(shape).double()  # the reference in float64: the processes' float32 may differ in the last bits only
    x = x.double().requires_grad_(True)
    y = bn(x)
    (y * upstream.double()).sum().backward()
    tol = {"rtol": 2e-5, "atol": 1e-5, "check_dtype": False}
    torch.testing.assert_close(torch.cat([p["y"] for p in parts]), y.detach(), **tol)
    torch.testing.assert_close(torch.cat([p["dx"] for p in parts]), x.grad, **tol)
    # γ and β gradients stay local: their sum over processes is the whole batch's (DDP averages them)
    torch.testing.assert_close(parts[0]["dw"] + parts[1]["dw"], bn.weight.grad, **tol)
    torch.testing.assert_close(parts[0]["db"] + parts[1]["db"], bn.bias.grad, **tol)
    for p in parts:  # the running statistics are the same on every rank, and the single process's
        torch.testing.assert_close(p["mean"], bn.running_mean, **tol)
        torch.testing.assert_close(p["var"], bn.running_var, **tol)


def test_convert_keeps_weights_and_refuses_torch_bn_on_cpu():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), BatchNorm2d(4))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    convert_sync_batchnorm(model)
    assert isinstance(model[1], SyncBatchNorm2d) and model.state_dict().keys() == state.keys()
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(model(x), torch.nn.Sequential(model[0], _plain(model[1]))(x))  # no group: plain BN
    with pytest.raises(ValueError, match="CUDA only"):
        convert_sync_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(4)))


def _plain(sync):
    bn = BatchNorm2d(sync.num_features)
    bn.load_state_dict(sync.state_dict())
    return bn
