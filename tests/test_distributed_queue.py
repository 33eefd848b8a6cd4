"""``hyperdml.collectives`` and CalibrateProxy under ``torch.distributed``: 2 CPU processes, gloo.

Each rank feeds its own data; afterwards both ranks must hold identical queues, equal to those of a
single process fed the concatenation of the ranks' batches in rank order. The process group is
initialised from a file in ``tmp_path`` with a 60 s timeout, so a failure cannot hang.
"""

from __future__ import annotations

import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hyperdml import collectives
from hyperdml.losses import CalibrateProxy, ProxyAnchor
from hyperdml.spaces import PoincareSpace

WORLD, C, D, STEPS = 2, 4, 5, 6


def rank_batch(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s batch at ``step`` (sizes differ between ranks at step 3)."""
    n = 7 + rank * 3 if step == 3 else 6
    g = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randn(n, D, generator=g), torch.randint(C, (n,), generator=g)


def make_loss(**kw) -> CalibrateProxy:
    torch.manual_seed(0)
    return CalibrateProxy(ProxyAnchor(C, D, space=PoincareSpace()), queue_size=3, start_epoch=2, **kw)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )  # fmt: skip
    try:
        assert collectives.is_distributed() and collectives.world_size() == WORLD and collectives.rank() == rank
        # all_gather_with_grad: each rank weights the gathered rows differently
        t = torch.arange(3 * D, dtype=torch.float64).view(3, D).add(10 * rank).requires_grad_()
        gathered = collectives.all_gather_with_grad(t)
        (gathered * (rank + 1) * torch.arange(1, 7, dtype=torch.float64)[:, None]).sum().backward()
        labels_all = collectives.all_gather_no_grad(torch.tensor([rank, rank + 10]))

        loss = make_loss()
        pre_gathered = make_loss(gather_queue=False)  # a trainer that feeds the global batch
        for step in range(STEPS):
            loss.set_epoch(step)
            x, y = rank_batch(step, rank)
            value = loss(x.requires_grad_(), y)
            value.backward()
            pre_gathered.set_epoch(step)
            x_all = collectives.all_gather_with_grad(x)
            pre_gathered(x_all, collectives.all_gather_no_grad(y)).backward()
        torch.save(
            {"state": loss.state_dict(), "pre_gathered": pre_gathered.state_dict(), "gathered": gathered.detach(),
             "grad": t.grad, "labels": labels_all},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_identity_outside_a_process_group():
    t = torch.randn(3, 2, requires_grad=True)
    assert not collectives.is_distributed()
    assert collectives.world_size() == 1 and collectives.rank() == 0
    assert collectives.all_gather_no_grad(t) is t and collectives.all_gather_with_grad(t) is t


def test_two_gloo_ranks_hold_identical_queues(tmp_path):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    out = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    # the gathers
    rows = [torch.arange(3 * D, dtype=torch.float64).view(3, D).add(10 * r) for r in range(WORLD)]
    for r in range(WORLD):
        assert torch.equal(out[r]["gathered"], torch.cat(rows))
        assert out[r]["labels"].tolist() == [0, 10, 1, 11]
        # d/dt of Σ_r' (r'+1)·w_i·g_i over the rows i of rank r: (1 + 2)·w_i
        w = torch.arange(1, 7, dtype=torch.float64)[3 * r : 3 * r + 3, None]
        torch.testing.assert_close(out[r]["grad"], (3.0 * w).expand(3, D))

    # identical queues on both ranks, equal to one process fed both ranks' batches in rank order
    states = [o["state"] for o in out]
    for key in ("queue", "queue_ptr", "queue_count"):
        assert torch.equal(states[0][key], states[1][key]), key
    single = make_loss()
    for step in range(STEPS):
        batches = [rank_batch(step, r) for r in range(WORLD)]
        with torch.no_grad():
            points = single.base.embed(torch.cat([b[0] for b in batches]))
        single.enqueue(points, torch.cat([b[1] for b in batches]))
    for key in ("queue", "queue_ptr", "queue_count"):
        assert torch.equal(states[0][key], getattr(single, key)), key
        # gather_queue=False with the global batch as input: the same queues, enqueued once
        for r in range(WORLD):
            assert torch.equal(out[r]["pre_gathered"][key], getattr(single, key)), (r, key)
    assert int(single.queue_count.sum()) == C * 3
