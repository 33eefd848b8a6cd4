"""``build_loss``: any loss of the library by name, with parameters from the command line.

Names (``config["loss"]``):

- Euclidean (cosine) proxy losses: ``proxy_anchor``, ``proxy_nca``, ``soft_triple``.
- The same in the Poincaré ball (``PoincareSpace(c, clip_r)``): ``hyp_proxy_anchor``,
  ``hyp_proxy_nca``, ``hyp_soft_triple``.
- ``chest``: :class:`~hyperdml.losses.CHEST` (dual head; called ``loss(z_e, z_h, labels)``).
- Wrappers, as a prefix: ``cp+<name>`` (:class:`hyperdml.losses.CalibrateProxy`),
  ``hpl+<name>`` (:class:`hyperdml.losses.HierarchicalProxy`), e.g. ``cp+proxy_anchor``,
  ``hpl+hyp_soft_triple`` (one wrapper: they wrap a plain proxy loss).

Parameters (``config["loss_args"]``, from repeated ``--loss-arg key=value``) go to the constructor
that has a parameter of that name (the base loss, the space of a hyperbolic loss:
``proxy_param``/``sim_scale``/``sim_offset``, or a wrapper); ``cp.key``, ``hpl.key``, ``base.key``
name the part explicitly. Values are typed by the constructor's default (:func:`parse_loss_args`).
The spaces come from :func:`head_spaces` (``config["c"]`` / ``config["clip_r"]``, ``--c``,
``--clip-r``, and the space's loss arguments) or, when rebuilding a checkpoint, from the spaces it
recorded; the model's heads, the loss and evaluation share them.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from torch import nn

from hyperdml.errors import ConfigError

__all__ = ["BASE_LOSSES", "WRAPPERS", "build_loss", "head_spaces", "hyperbolic_head_norm", "loss_head", "loss_head_spaces", "parse_loss_args", "loss_parameters",
           "split_name"]

#: base name → (class name in hyperdml.losses, space)
BASE_LOSSES = {
    "proxy_anchor": ("ProxyAnchor", "euclidean"),
    "proxy_nca": ("ProxyNCA", "euclidean"),
    "soft_triple": ("SoftTriple", "euclidean"),
    "hyp_proxy_anchor": ("ProxyAnchor", "poincare"),
    "hyp_proxy_nca": ("ProxyNCA", "poincare"),
    "hyp_soft_triple": ("SoftTriple", "poincare"),
    "chest": ("CHEST", "dual"),
}
#: wrapper prefix → class name in hyperdml.losses (imported when used)
WRAPPERS = {"cp": "CalibrateProxy", "hpl": "HierarchicalProxy"}
_SPACE_ARGS = ("proxy_param", "sim_scale", "sim_offset")
_FIXED = {"num_classes", "embedding_size", "euclidean_size", "hyperbolic_size", "space", "base", "c", "clip_r"}


def split_name(name: str) -> tuple[list[str], str]:
    """``"cp+proxy_anchor"`` → ``(["cp"], "proxy_anchor")``; ConfigError for unknown names."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"loss name must be a non-empty string, got {name!r}")
    parts = name.strip().lower().split("+")
    wrappers, base = parts[:-1], parts[-1]
    for w in wrappers:
        if w not in WRAPPERS:
            raise ConfigError(f"unknown loss wrapper {w!r} in {name!r}; wrappers: {', '.join(w + '+' for w in WRAPPERS)}")
    if base not in BASE_LOSSES:
        raise ConfigError(
            f"unknown loss {base!r}; choose one of {', '.join(BASE_LOSSES)}, optionally wrapped as cp+NAME or hpl+NAME"
        )
    if base == "chest" and wrappers:
        raise ConfigError("CHEST cannot be wrapped by cp+/hpl+ (it is not a single proxy loss)")
    if len(wrappers) > 1:
        raise ConfigError(f"{name!r}: one wrapper at most (cp+ and hpl+ each wrap a plain proxy loss)")
    return wrappers, base


def loss_head(name: str) -> str:
    """The model head a loss needs: ``"euclidean"``, ``"hyperbolic"`` or ``"dual"`` (CHEST)."""
    _, base = split_name(name)
    return {"euclidean": "euclidean", "poincare": "hyperbolic", "dual": "dual"}[BASE_LOSSES[base][1]]


def _losses_module():
    return importlib.import_module("hyperdml.losses")


def _wrapper_class(prefix: str):
    cls_name = WRAPPERS[prefix]
    cls = getattr(_losses_module(), cls_name, None)
    if cls is None:
        raise ConfigError(f"loss wrapper {prefix}+ needs hyperdml.losses.{cls_name}, which this installation lacks")
    return cls


def _typed_default(p: inspect.Parameter):
    """The parameter's default, as the annotated scalar type when there is one (``la: float = 20``
    → ``20.0``), so that command-line values get the annotated type."""
    default, ann = p.default, p.annotation
    ann = ann if isinstance(ann, str) else getattr(ann, "__name__", "")
    ann = ann.replace(" ", "")
    if isinstance(default, bool) or default is None or default is inspect.Parameter.empty:
        return default
    if ann in ("float", "float|None", "Optional[float]") and isinstance(default, int):
        return float(default)
    return default


def _defaults(fn) -> dict[str, Any]:
    """The settable parameters of ``fn`` with their defaults; a class that forwards its ``**kwargs``
    to another loss names it in ``FORWARDED_KWARGS`` (CHEST: SoftTriple), whose parameters come first."""
    params = inspect.signature(fn).parameters.values()
    forwarded = getattr(fn, "FORWARDED_KWARGS", None)
    return {**(_defaults(forwarded) if forwarded is not None else {}),
            **{p.name: _typed_default(p) for p in params
               if p.name not in _FIXED and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}}


def loss_parameters(name: str) -> dict[str, dict[str, Any]]:
    """The settable parameters of each part of loss ``name`` with their defaults.

    ``{"base": {...}, "space": {...} (hyperbolic losses), "cp": {...}, "hpl": {...}}``
    (``inspect.Parameter.empty`` marks a parameter without a default).
    """
    wrappers, base = split_name(name)
    cls_name, space = BASE_LOSSES[base]
    parts = {"base": _defaults(getattr(_losses_module(), cls_name))}
    if space == "poincare":
        from hyperdml.spaces import PoincareSpace

        parts["space"] = {k: v for k, v in _defaults(PoincareSpace).items() if k in _SPACE_ARGS}
    for w in wrappers:
        parts[w] = _defaults(_wrapper_class(w))
    return parts


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _convert(key: str, text: str, default: Any):
    """Convert ``text`` to the type of ``default`` (see :func:`parse_loss_args`)."""
    t = text.strip()
    try:
        if t.lower() in ("none", "null"):  # the constructor says whether None is allowed
            return None
        if isinstance(default, bool):
            if t.lower() in _TRUE | _FALSE:
                return t.lower() in _TRUE
            raise ValueError("expected true/false")
        if isinstance(default, int):
            return int(t)
        if isinstance(default, float):
            return float(t)
        if isinstance(default, str):
            return t
        if isinstance(default, (tuple, list)):
            elem = default[0] if len(default) else None
            items = [s for s in t.replace(";", ",").split(",") if s.strip()]
            return [_convert(key, s, elem) for s in items]
        for cast in (int, float):  # default None / no default: the most specific number, else text
            try:
                return cast(t)
            except ValueError:
                pass
        if t.lower() in _TRUE | _FALSE and not t.isdigit():
            return t.lower() in _TRUE
        return t
    except ValueError:
        raise ConfigError(f"loss argument {key}={text!r}: expected a value like the default {default!r}") from None


def parse_loss_args(name: str, items: list[str] | dict | None) -> dict[str, Any]:
    """``["margin=0.2", "cp.queue_size=50"]`` (or a dict) → ``{"margin": 0.2, "cp.queue_size": 50}``.

    Each key must name a parameter of one part of loss ``name`` (see :func:`loss_parameters`);
    ``part.key`` names the part (``base``, ``space``, ``cp``, ``hpl``). Values are typed by the
    parameter's default: bool (true/false/1/0/yes/no), int, float, str, a comma-separated list for
    tuple defaults, and int → float → text for a ``None`` default ("none" gives None). Unknown or
    ambiguous keys, a parameter given twice (``margin=0.1`` and ``base.margin=0.2`` too), and
    ``c``/``clip_r`` (use ``--c``/``--clip-r``) raise ``ConfigError``. ``none``/``null``
    give None for any parameter (the constructor refuses it where None has no meaning).
    """
    if not items:
        return {}
    parts = loss_parameters(name)
    if isinstance(items, dict):
        pairs = [(str(k), v) for k, v in items.items()]
    else:
        pairs = []
        for item in items:
            if "=" not in item:
                raise ConfigError(f"loss argument {item!r} is not of the form key=value")
            k, v = item.split("=", 1)
            pairs.append((k.strip(), v))
    out: dict[str, Any] = {}
    given: dict[tuple[str, str], str] = {}
    for key, value in pairs:
        part, _, pname = key.rpartition(".")
        if pname in ("c", "clip_r"):
            raise ConfigError(f"set the curvature and clipping radius with --c / --clip-r, not --loss-arg {key}")
        owners = [p for p in parts if pname in parts[p]] if not part else ([part] if pname in parts.get(part, {}) else [])
        if not owners:
            known = sorted({f"{p}.{k}" if sum(k in d for d in parts.values()) > 1 else k
                            for p, d in parts.items() for k in d})
            raise ConfigError(f"loss {name!r} has no parameter {key!r}; its parameters: {', '.join(known)}")
        if len(owners) > 1:
            raise ConfigError(f"loss argument {key!r} is ambiguous in {name!r}: write one of "
                              f"{', '.join(o + '.' + pname for o in owners)}")
        if (owners[0], pname) in given:
            first = given[owners[0], pname]
            what = f"loss argument {key!r} is given twice" if first == key else \
                f"loss arguments {first!r} and {key!r} set the same parameter"
            raise ConfigError(f"{what}; give each parameter once")
        given[owners[0], pname] = key
        out_key = pname if not part else key
        out[out_key] = _convert(key, value, parts[owners[0]][pname]) if isinstance(value, str) else value
    return out


def _route(name: str, loss_args: dict[str, Any]) -> dict[str, dict[str, Any]]:
    parts = loss_parameters(name)
    routed: dict[str, dict[str, Any]] = {p: {} for p in parts}
    for key, value in (loss_args or {}).items():
        part, _, pname = key.rpartition(".")
        owners = [part] if part else [p for p in parts if pname in parts[p]]
        if len(owners) != 1 or owners[0] not in parts or pname not in parts[owners[0]]:
            raise ConfigError(f"loss {name!r}: cannot place the argument {key!r} (see parse_loss_args)")
        routed[owners[0]][pname] = tuple(value) if isinstance(value, list) else value
    return routed


def _space_args(name: str, loss_args: dict) -> dict[str, Any]:
    """The hyperbolic space's arguments among the loss arguments (CHEST takes ``proxy_param`` itself)."""
    routed = _route(name, parse_loss_args(name, dict(loss_args)) if loss_args else {})
    args = dict(routed.get("space", {}))
    if "proxy_param" in routed.get("base", {}):
        args["proxy_param"] = routed["base"]["proxy_param"]
    return args


def hyperbolic_head_norm(config: dict) -> str | None:
    """The ``norm`` of the config's :class:`~hyperdml.models.HyperbolicHead` (``"batch"`` or
    ``"layer"``), or None for a linear hyperbolic head (``config["hyperbolic_head"]``, default
    ``linear``; the names of :data:`~hyperdml.models.archs.HYPERBOLIC_HEAD_ALIASES` are read too)."""
    from hyperdml.models.archs import HYPERBOLIC_HEAD_ALIASES

    name = config.get("hyperbolic_head") or "linear"
    name = HYPERBOLIC_HEAD_ALIASES.get(name, name)
    return None if name == "linear" else name


def head_spaces(config: dict) -> dict:
    """The space of each model head of a training config: ``{head name: Space}``.

    ``euclidean``: ``EuclideanSpace()``; ``hyperbolic``: ``PoincareSpace(c, clip_r, inputs=...)``
    with the hyperbolic loss's space arguments (``proxy_param``, ``sim_scale``, ``sim_offset``) and
    ``inputs="ball"`` when the model's hyperbolic head is a :class:`~hyperdml.models.HyperbolicHead`
    (``config["hyperbolic_head"]`` ``batch`` or ``layer``), ``"tangent"`` for a linear head.
    """
    from hyperdml.models import HEAD_NAMES
    from hyperdml.spaces import EuclideanSpace, PoincareSpace

    head = config.get("head") or loss_head(config.get("loss", "proxy_anchor"))
    out = {}
    for name in HEAD_NAMES[head]:
        if name == "euclidean":
            out[name] = EuclideanSpace()
            continue
        inputs = "tangent" if hyperbolic_head_norm(config) is None else "ball"
        out[name] = PoincareSpace(c=float(config.get("c", 0.1)), clip_r=config.get("clip_r", 2.3), inputs=inputs,
                                  **_space_args(config.get("loss", "proxy_anchor"), config.get("loss_args") or {}))
    return out


#: Loss arguments that rebuild a stored loss state of an older layout, per base loss: when none of
#: the state keys a newer default adds is stored, and the config sets none of these arguments, the
#: loss is built with the older defaults (a CHEST written before the sphere and the class-mean
#: target holds neither ``hc_seen`` nor ``hyphc.radius`` and trained with ``hc_tau=0.05``).
_OLDER_LAYOUTS = {
    "chest": (("hc_seen", "hyphc.radius"), {"hc_target": "proxies", "hc_sphere": False, "hc_tau": 0.05}),
}


def stored_loss_config(config: dict, loss_state) -> dict:
    """``config`` with the ``loss_args`` that rebuild ``loss_state`` (a stored ``state_dict``).

    The same ``config`` unless the state has an older layout of its loss (see ``_OLDER_LAYOUTS``):
    then the older defaults are added to ``loss_args``, so that checkpoints written before a
    default changed still load and resume as they trained.
    """
    _, base = split_name(config.get("loss", "proxy_anchor"))
    if base not in _OLDER_LAYOUTS or not isinstance(loss_state, dict):
        return config
    newer_keys, older_args = _OLDER_LAYOUTS[base]
    raw = config.get("loss_args") or {}
    args = dict(parse_loss_args(config["loss"], raw)) if raw else {}
    if any(k in loss_state for k in newer_keys) or set(args) & set(older_args):
        return config
    return {**config, "loss_args": {**args, **older_args}}


def build_loss(config: dict, num_classes: int, spaces: dict | None = None) -> nn.Module:
    """The loss named ``config["loss"]`` for ``num_classes`` training classes.

    Reads ``loss``, ``loss_args`` (dict, typed or strings), ``embedding_size`` and
    ``hyperbolic_size`` (default ``embedding_size``) from ``config``. ``spaces`` (``{head: Space}``,
    e.g. a checkpoint's) gives the loss its spaces; default :func:`head_spaces` of the config.
    Returns an ``nn.Module``: single-head losses are called ``loss(embeddings (B, D), labels (B,))``,
    CHEST ``loss(z_e (B, D_E), z_h (B, D_H), labels)``. Bad names or parameters raise
    :class:`~hyperdml.errors.ConfigError`.
    """
    name = config.get("loss", "proxy_anchor")
    wrappers, base = split_name(name)
    raw = config.get("loss_args") or {}
    args = parse_loss_args(name, {k: v for k, v in raw.items()}) if raw else {}
    routed = _route(name, args)
    d_e = int(config.get("embedding_size", 128))
    d_h = int(config.get("hyperbolic_size") or d_e)
    cls_name, space_kind = BASE_LOSSES[base]
    cls = getattr(_losses_module(), cls_name)
    spaces = dict(spaces) if spaces is not None else head_spaces({**config, "head": loss_head(name)})
    try:
        if space_kind == "dual":
            hyp = spaces["hyperbolic"]
            base_args = {"proxy_param": hyp.proxy_param, **routed["base"]}
            loss = cls(num_classes, d_e, d_h, c=hyp.c, clip_r=hyp.clip_r, inputs=hyp.inputs, **base_args)
        elif space_kind == "poincare":
            loss = cls(num_classes, d_h, space=spaces["hyperbolic"], **routed["base"])
        else:
            loss = cls(num_classes, d_e, space=spaces["euclidean"], **routed["base"])
        for w in reversed(wrappers):  # innermost first
            loss = _wrapper_class(w)(loss, **routed[w])
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"cannot build loss {name!r} with {args or 'default arguments'}: {exc}") from None
    wanted = [spaces[h] for h in _head_names(name)]
    if list(loss.input_spaces) != wanted:
        raise ConfigError(f"loss {name!r} cannot take the spaces {wanted!r} (it builds {list(loss.input_spaces)!r})")
    return loss


def loss_head_spaces(name: str, loss) -> dict:
    """``{head name: Space}`` of a built loss: its ``input_spaces`` named by the heads that feed them."""
    return dict(zip(_head_names(name), loss.input_spaces))


def _head_names(name: str) -> tuple[str, ...]:
    from hyperdml.models import HEAD_NAMES

    return HEAD_NAMES[loss_head(name)]
