"""Published training recipes for ViT backbones: ``hyperdml train --recipe hyp-vit | hier``.

A recipe fills the options a user did not give (:func:`recipe_settings`, applied by
:func:`hyperdml.train.config.resolve_config`) with the settings of a published method: backbone,
image size, batch and samples per class, epochs, optimiser settings, learning rates, head,
curvature and clipping radius, per data set and backbone. Each value is the one in the authors'
public code (file named in :data:`RECIPES`); ``docs/training.md`` lists them with the published
Recall@1 and what hyperdml does differently (:attr:`Recipe.differences`). No torch import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hyperdml.errors import ConfigError
from hyperdml.models.archs import VIT_ARCHS

__all__ = ["Recipe", "RECIPES", "recipe_settings", "recipe_names"]

BENCHMARKS = ("cub", "cars", "sop", "inshop")


@dataclass(frozen=True)
class Recipe:
    """A published recipe.

    Attributes:
        name: the ``--recipe`` name.
        paper: the publication.
        source: where each value comes from (the authors' code).
        common: settings for every data set and backbone (config keys).
        per_dataset: settings of one benchmark (``cub``, ``cars``, ``sop``, ``inshop``); other
            data sets (``synthetic``, ``digits``) get ``per_dataset[fallback]``.
        lr: base learning rate per backbone family (``"vit"``: the ``vit_*`` archs, whose
            published weights are DINO's; ``"deit"``: the ``deit_*`` archs), and per data set
            where it differs.
        fallback: the benchmark whose settings other data sets get.
        differences: published settings hyperdml does not reproduce, one line each.
    """

    name: str
    paper: str
    source: str
    common: dict[str, Any]
    per_dataset: dict[str, dict[str, Any]]
    lr: dict[str, float]
    fallback: str = "cub"
    differences: tuple[str, ...] = field(default_factory=tuple)


HYP_VIT = Recipe(
    name="hyp-vit",
    paper="Ermolov et al., Hyperbolic Vision Transformers: Combining Improvements in Metric Learning, CVPR 2022",
    source="github.com/htdt/hyp_metric: README 'Configs' commands and train.py defaults",
    common={
        "arch": "vit_small_patch16_224", "image_size": 224, "embedding_size": 128,
        "loss": "hyp_proxy_anchor", "hyperbolic_head": "linear", "c": 0.1, "clip_r": 2.3,
        "weight_decay": 0.01, "adam_eps": 1e-8, "head_lr_mult": 1.0,
        "warmup_epochs": 0.0, "schedule": "constant", "grad_clip": 3.0, "amp": "fp16",
    },
    per_dataset={
        "cub": {"batch_size": 900, "samples_per_class": 9, "epochs": 50},
        "cars": {"batch_size": 882, "samples_per_class": 9, "epochs": 300},
        "sop": {"batch_size": 900, "samples_per_class": 2, "epochs": 200},
        "inshop": {"batch_size": 900, "samples_per_class": 2, "epochs": 400},
    },
    lr={"vit": 1e-5, "deit": 3e-5},
    differences=(
        "loss: Hyp-ViT's pairwise cross-entropy on hyperbolic distances (temperature 0.2) is not a proxy loss "
        "and not in hyperdml; the recipe trains hyp_proxy_anchor (any --loss may be given)",
        "optimiser: AdamW (decoupled weight decay 0.01); hyperdml's RiemannianAdam applies the same value "
        "as an L2 term, and steps the proxies at lr × --proxy-lr-mult (Hyp-ViT has no proxies)",
        "learning rate: 1e-5 for DINO weights, 3e-5 for timm's ImageNet-21k ViT-S/16 and for DeiT-S; "
        "the recipe takes vit_* weights to be DINO's (give --lr 3e-5 for timm's)",
        "augmentation: RandomResizedCrop(224, scale=(0.2, 1), bicubic) + flip, and mean = std = 0.5 for "
        "timm's ViT-S/16; hyperdml's folders use scale=(0.16, 1), bilinear, ImageNet statistics",
        "evaluation: resize 256 → crop 224 on CUB (as hyperdml), resize 224 → crop 224 elsewhere",
        "frozen patch embedding (--freeze 0) and apex O2 mixed precision; hyperdml trains every layer "
        "under autocast fp16",
    ),
)

HIER = Recipe(
    name="hier",
    paper="Kim et al., HIER: Metric Learning Beyond Class Labels via Hierarchical Regularization, CVPR 2023",
    source="github.com/tjddus9597/HIER-CVPR23: scripts/DINO/*.sh, scripts/Deit/*.sh, scripts/ViT/*.sh, hier/train.py",
    common={
        "arch": "vit_small_patch16_224", "image_size": 224, "embedding_size": 128,
        "loss": "hyp_proxy_anchor", "hyperbolic_head": "layer", "c": 0.1, "clip_r": 2.3,
        "batch_size": 180, "samples_per_class": 2, "proxy_lr_mult": 1e4, "adam_eps": 1e-4,
        "schedule": "constant", "amp": "fp16",
    },
    per_dataset={
        "cub": {"epochs": 100, "weight_decay": 1e-2, "warmup_epochs": 1.0, "head_lr_mult": 1.0},
        "cars": {"epochs": 100, "weight_decay": 1e-2, "warmup_epochs": 1.0, "head_lr_mult": 1.0},
        "sop": {"epochs": 150, "weight_decay": 1e-4, "warmup_epochs": 5.0, "head_lr_mult": 100.0},
        "inshop": {"epochs": 150, "weight_decay": 1e-4, "warmup_epochs": 5.0, "head_lr_mult": 100.0},
    },
    lr={"vit": 5e-6, "deit": 1e-5},
    differences=(
        "loss: HIER's Proxy-Anchor term is the cosine one on the ball points, plus the HIER regulariser "
        "(512 hierarchical proxies, weight 0.5, top-k 20, margin 0.1), which is not in hyperdml; the recipe "
        "trains hyp_proxy_anchor (Proxy-Anchor on the hyperbolic similarity, margin 0.1, alpha 32)",
        "batch: 90 per GPU on 2 GPUs (the global 180 here), learning rate scaled by batch/180",
        "learning rate: 5e-6 for DINO weights, 1e-5 for timm's ImageNet-21k ViT-S/16 and for DeiT-S; "
        "the recipe takes vit_* weights to be DINO's (give --lr 1e-5 for timm's)",
        "embedding size: 512 for timm's ViT-S/16 on In-Shop (128 elsewhere)",
        "optimiser: AdamW with decoupled weight decay on every group (proxies too); hyperdml's RiemannianAdam "
        "applies it as an L2 term, not on the proxies",
        "warm-up: the backbone is frozen for the warm-up epochs while head and proxies train; hyperdml ramps "
        "every group's rate linearly",
        "gradients clamped elementwise to ±10 (HIER's clip_gradients_value); hyperdml clips the norm "
        "(--grad-clip) and the recipe leaves it off",
        "head: LayerNorm without affine parameters; hyperdml's HyperbolicHead(norm='layer') has them",
        "augmentation: RandomResizedCrop(224, scale=(0.2, 1), bicubic) + flip, mean = std = 0.5 for timm's "
        "ViT-S/16; hyperdml's folders use scale=(0.16, 1), bilinear, ImageNet statistics",
        "frozen patch embedding; hyperdml trains every layer",
    ),
)

#: the recipes by ``--recipe`` name
RECIPES: dict[str, Recipe] = {r.name: r for r in (HYP_VIT, HIER)}


def recipe_names() -> tuple[str, ...]:
    """The ``--recipe`` names."""
    return tuple(RECIPES)


def recipe_settings(name: str, dataset: str, arch: str | None = None) -> dict[str, Any]:
    """The options recipe ``name`` sets for ``dataset`` and backbone ``arch``.

    ``arch`` None or ``"auto"``: the recipe's backbone (ViT-S/16). The learning rate is the
    recipe's for the backbone family (``vit_*``: DINO's weights; ``deit_*``). A data set other
    than the four benchmarks gets the ``fallback`` benchmark's settings. Raises ``ConfigError``
    for an unknown recipe or a backbone the recipe has no settings for (the CNNs).
    """
    if name not in RECIPES:
        raise ConfigError(f"--recipe must be one of {', '.join(RECIPES)}, got {name!r}")
    recipe = RECIPES[name]
    settings = dict(recipe.common)
    arch = settings["arch"] if arch in (None, "auto") else arch
    if arch not in VIT_ARCHS:
        raise ConfigError(f"--recipe {name} has settings for the ViT backbones ({', '.join(VIT_ARCHS)}), "
                          f"not for --arch {arch}")
    settings["arch"] = arch
    settings.update(recipe.per_dataset[dataset if dataset in recipe.per_dataset else recipe.fallback])
    settings["lr"] = recipe.lr["deit" if arch.startswith("deit") else "vit"]
    return settings
