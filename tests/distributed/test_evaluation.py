"""Evaluation under torchrun: each process scores its contiguous slice of a split and the confusion
matrices are summed, giving every process what one process computes over the whole split."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from resnetlab.evaluation import evaluate

CLASSES = ["a", "b", "c"]


def _split():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (101, 3, 8, 8), generator=g, dtype=torch.uint8)  # 101: uneven slices
    return x, torch.randint(0, 3, (101,), generator=g)


def _predict(batch):
    """A fixed, asymmetric classifier: its mirror view predicts differently, so TTA changes the counts."""
    w = torch.randn(3, batch[0].numel(), generator=torch.Generator().manual_seed(1))
    return batch.flatten(1).float() @ w.T


def _worker(rank, path, out):
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2)
    x, y = _split()
    seen = []
    result = evaluate(lambda b: seen.append(len(b)) or _predict(b), x, y, CLASSES, tta="flip", batch_size=16)
    torch.save({"single": result.confusion, "tta": result.confusion_tta, "seen": sum(seen)}, f"{out}.{rank}")
    dist.barrier()  # both ranks done with gloo before either tears it down (else, at times, SIGABRT)
    dist.destroy_process_group()


def test_sharded_evaluation_equals_one_process(tmp_path):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.start_processes(_worker, args=(str(tmp_path / "store"), str(tmp_path / "out")), nprocs=2, start_method="spawn")
    parts = [torch.load(f"{tmp_path / 'out'}.{r}") for r in (0, 1)]
    x, y = _split()
    whole = evaluate(_predict, x, y, CLASSES, tta="flip")
    assert whole.images == 101 and not torch.equal(whole.confusion, whole.confusion_tta)
    for p in parts:  # every process holds the whole split's counts
        assert torch.equal(p["single"], whole.confusion) and torch.equal(p["tta"], whole.confusion_tta)
    assert [p["seen"] for p in parts] == [2 * 50, 2 * 51]  # each scored its own slice (two views per image)
