"""``--recipe hyp-vit | hier``: the published settings fill the options a user did not give."""

from __future__ import annotations

import pytest

from hyperdml.errors import ConfigError
from hyperdml.models.archs import VIT_ARCHS
from hyperdml.train.config import DEFAULTS, resolve_config
from hyperdml.train.recipes import RECIPES, recipe_settings

# The published values, as read from the authors' code (hyp_metric README/train.py; HIER scripts/).
PUBLISHED = {
    ("hyp-vit", "cub"): {"batch_size": 900, "samples_per_class": 9, "epochs": 50, "lr": 1e-5, "grad_clip": 3.0},
    ("hyp-vit", "cars"): {"batch_size": 882, "samples_per_class": 9, "epochs": 300, "lr": 1e-5},
    ("hyp-vit", "sop"): {"batch_size": 900, "samples_per_class": 2, "epochs": 200, "lr": 1e-5},
    ("hyp-vit", "inshop"): {"batch_size": 900, "samples_per_class": 2, "epochs": 400, "lr": 1e-5},
    ("hier", "cub"): {"batch_size": 180, "samples_per_class": 2, "epochs": 100, "lr": 5e-6, "weight_decay": 1e-2,
                      "warmup_epochs": 1.0, "head_lr_mult": 1.0, "proxy_lr_mult": 1e4, "adam_eps": 1e-4},
    ("hier", "sop"): {"batch_size": 180, "epochs": 150, "weight_decay": 1e-4, "warmup_epochs": 5.0,
                      "head_lr_mult": 100.0},
}


@pytest.mark.parametrize("recipe, dataset", sorted(PUBLISHED))
def test_recipe_holds_the_published_values(recipe, dataset):
    settings = recipe_settings(recipe, dataset)
    for key, value in PUBLISHED[recipe, dataset].items():
        assert settings[key] == value, key
    assert settings["arch"] == "vit_small_patch16_224" and settings["image_size"] == 224
    assert settings["c"] == 0.1 and settings["clip_r"] == 2.3 and settings["embedding_size"] == 128
    assert settings["hyperbolic_head"] == {"hyp-vit": "linear", "hier": "layer"}[recipe]
    assert set(settings) <= set(DEFAULTS)


def test_deit_gets_its_published_learning_rate():
    assert recipe_settings("hyp-vit", "cub", "deit_small_distilled_patch16_224")["lr"] == 3e-5
    assert recipe_settings("hier", "cars", "deit_small_patch16_224")["lr"] == 1e-5


def test_resolve_config_fills_only_what_was_not_given():
    cfg = resolve_config(recipe="hyp-vit", dataset="synthetic", image_size=32, batch_size=8, samples_per_class=2,
                         lr=3e-5, amp="none")
    assert cfg["recipe"] == "hyp-vit"
    assert (cfg["image_size"], cfg["batch_size"], cfg["samples_per_class"], cfg["lr"], cfg["amp"]) == (32, 8, 2, 3e-5,
                                                                                                        "none")
    assert cfg["arch"] == "vit_small_patch16_224" and cfg["loss"] == "hyp_proxy_anchor" and cfg["head"] == "hyperbolic"
    assert cfg["grad_clip"] == 3.0 and cfg["schedule"] == "constant" and cfg["epochs"] == 50  # synthetic: CUB's
    assert resolve_config(recipe="hier", arch="auto", amp="none")["arch"] == "vit_small_patch16_224"
    assert resolve_config(recipe="hier", loss="proxy_anchor", amp="none")["head"] == "euclidean"
    plain = resolve_config()
    assert plain["recipe"] is None and plain["arch"] == "small_cnn"  # no recipe: the defaults as before


def test_bad_recipes_are_named():
    with pytest.raises(ConfigError, match="--recipe must be one of hyp-vit, hier"):
        resolve_config(recipe="proxy-anchor-2020")
    with pytest.raises(ConfigError, match="not for --arch resnet50"):
        resolve_config(recipe="hier", arch="resnet50")


def test_every_recipe_names_its_source_and_differences():
    for recipe in RECIPES.values():
        assert recipe.paper and recipe.source and len(recipe.differences) >= 3
        assert set(recipe.per_dataset) == {"cub", "cars", "sop", "inshop"}
        for arch in VIT_ARCHS:
            recipe_settings(recipe.name, "cub", arch)


def test_cli_offers_the_recipes_and_archs():
    from hyperdml.cli import build_parser

    args = build_parser().parse_args(["train", "--recipe", "hier", "--arch", "deit_small_patch16_224"])
    assert args.recipe == "hier" and args.arch == "deit_small_patch16_224"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--recipe", "nope"])
