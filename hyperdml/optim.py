"""The optimiser for proxy losses: ``geoopt.optim.RiemannianAdam`` with per-part learning rates."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from hyperdml.geometry import geoopt

__all__ = ["make_optimizer"]

Params = nn.Module | Iterable[torch.Tensor] | None


def _params(part: Params) -> list[torch.Tensor]:
    if part is None:
        return []
    if isinstance(part, torch.Tensor):
        return [part]
    if isinstance(part, nn.Module):
        return list(part.parameters())
    return list(part)


def make_optimizer(
    backbone: Params,
    loss: Params = None,
    head: Params = None,
    *,
    lr: float = 1e-4,
    head_lr_mult: float = 1.0,
    proxy_lr_mult: float = 100.0,
    weight_decay: float = 1e-4,
    proxy_weight_decay: float = 0.0,
    **kwargs,
) -> geoopt.optim.RiemannianAdam:
    """``geoopt.optim.RiemannianAdam`` over a model and a loss, with three learning rates.

    Proxy losses need a much larger learning rate on the proxies than on the network (Proxy-Anchor
    uses ×100). Riemannian Adam steps ``geoopt.ManifoldParameter`` proxies on their manifold (the
    Poincaré ball: the retraction projects them back inside) and ordinary parameters as Adam.

    Args:
        backbone: module or parameters at ``lr``. May contain ``head`` (e.g. the whole model):
            each parameter joins the first group it belongs to, in the order loss, head, backbone.
        loss: module or parameters of the loss (its proxies) at ``lr · proxy_lr_mult``.
        head: module or parameters of the embedding head(s) at ``lr · head_lr_mult``.
        lr: base learning rate.
        head_lr_mult, proxy_lr_mult: learning-rate multipliers (defaults 1 and 100).
        weight_decay: weight decay of backbone and head (default 1e-4, as ``hyperdml train``);
            ``proxy_weight_decay`` that of the loss (default 0).
        **kwargs: passed to ``RiemannianAdam`` (``betas``, ``eps``, ``amsgrad``, ``stabilize``).

    Returns:
        The optimiser, with groups named ``"proxies"``, ``"head"``, ``"backbone"`` (empty ones
        left out; parameters with ``requires_grad=False`` too).
    """
    seen: set[int] = set()
    groups = []
    for name, part, mult, wd in (
        ("proxies", loss, proxy_lr_mult, proxy_weight_decay),
        ("head", head, head_lr_mult, weight_decay),
        ("backbone", backbone, 1.0, weight_decay),
    ):
        params = []
        for p in _params(part):
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        if params:
            groups.append({"params": params, "lr": lr * mult, "weight_decay": wd, "name": name})
    if not groups:
        raise ValueError("make_optimizer: no trainable parameters in backbone, head or loss")
    return geoopt.optim.RiemannianAdam(groups, lr=lr, **kwargs)
