"""The training loop behind ``hyperdml train``: :func:`train` (and :class:`Trainer`).

One process, or one of ``N`` under ``torchrun`` (DDP). Per step: the model's heads on a
class-balanced batch (under autocast when ``amp`` is set), the head outputs cast to float32 (the
losses' hyperbolic math never runs in half precision), all-gathered over processes with gradient
so that the loss sees the global batch, the loss (CHEST: ``loss(z_e, z_h, labels)``, others:
``loss(z, labels)``), backward, gradient clipping, a Riemannian Adam step with per-group learning
rates and the warm-up schedule. Each epoch ends with an evaluation on the test split
(``<out>/metrics.json``) and a checkpoint (``<out>/last.pt``, written atomically by rank 0).
``<out>/log.jsonl`` gets one JSON record per step (every ``log_every``), per epoch and per
evaluation.

Reproducibility: everything random is seeded from ``seed``: model and proxy initialisation
(global torch RNG), the batch sampler (its own seed and the epoch), the losses' own generators
(in their state dicts). A checkpoint stores all of it (and the position in the epoch), so a run
resumed from any checkpoint continues exactly as the uninterrupted run (with ``workers=0`` or
deterministic data transforms; random augmentations in worker processes are seeded per epoch
but not per step).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time

import torch
from torch import nn

from hyperdml.distributed import all_gather_no_grad, all_gather_with_grad
from hyperdml.errors import ConfigError, HyperdmlError
from hyperdml.train.checkpoint import FORMAT, VERSION, checkpoint_spaces, load_checkpoint, load_state, save_checkpoint
from hyperdml.train.config import resolve_config
from hyperdml.train.distributed import cleanup_distributed, env_world_size, setup_distributed
from hyperdml.train.evaluate import evaluate_model
from hyperdml.train.rng import rng_state, seed_everything, set_rng_state
from hyperdml.train.schedule import WarmupSchedule

__all__ = ["Trainer", "train", "resolve_resume_path", "RESUME_OVERRIDES"]

#: options that may differ from the checkpoint's when resuming (the rest must stay the same)
RESUME_OVERRIDES = ("epochs", "max_steps", "out", "quiet", "device", "eval_every", "eval_batch_size", "workers",
                    "log_every", "data_root")


def resolve_resume_path(resume: str) -> str:
    """``--resume`` value → checkpoint file: a file as is, a folder → ``<folder>/last.pt``."""
    path = os.fspath(resume)
    return os.path.join(path, "last.pt") if os.path.isdir(path) else path


def _merge_resume(given: dict, ckpt_cfg: dict, ckpt_path: str) -> dict:
    """The checkpoint's config with the allowed overrides from ``given``; ConfigError on a conflict."""
    merged = dict(ckpt_cfg)
    merged.setdefault("hyperbolic_head", "linear")  # checkpoints from before the option had linear heads
    for key in RESUME_OVERRIDES:
        if key in given:
            merged[key] = given[key]
    if "out" not in given:
        merged["out"] = os.path.dirname(os.path.abspath(ckpt_path))
    wanted = resolve_config({**ckpt_cfg, **{k: v for k, v in given.items() if k != "resume"}})
    for key, value in wanted.items():
        if key in RESUME_OVERRIDES or key in ("in_channels", "num_classes"):
            continue
        if key in given and value != ckpt_cfg.get(key):
            raise ConfigError(
                f"--resume continues the checkpoint's run, whose {key} is {ckpt_cfg.get(key)!r}, not {value!r}; "
                f"only {', '.join(RESUME_OVERRIDES)} may change"
            )
    return merged


class _JsonLog:
    """``log.jsonl`` appender (one JSON object per line, flushed)."""

    def __init__(self, path: str | None, truncate_after_step: int | None = None):
        self.path = path
        if path is None:
            return
        if truncate_after_step is not None and os.path.exists(path):
            # Resuming: drop the records of steps after the checkpoint (they are redone).
            keep = []
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if int(rec.get("step", 0)) <= truncate_after_step:
                        keep.append(line if line.endswith("\n") else line + "\n")
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(keep)

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")


def _write_json(path: str, obj) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


class Trainer:
    """Builds data, model, loss, optimiser and schedule from a config, and runs the loop.

    Args:
        config: training options (see :data:`hyperdml.train.config.DEFAULTS`); may hold
            ``"resume"`` (checkpoint file or run folder).
        resume: same as ``config["resume"]``.
        progress: show tqdm bars (default: when stderr is a terminal and not ``quiet``).

    After :meth:`fit`: :attr:`history` (per-step losses), :attr:`metrics` (last evaluation).
    """

    def __init__(self, config: dict, resume: str | None = None, progress: bool | None = None):
        given = dict(config or {})
        resume = resume or given.pop("resume", None)
        given.pop("resume", None)
        self.ckpt = None
        if resume:
            self.ckpt_path = resolve_resume_path(resume)
            self.ckpt = load_checkpoint(self.ckpt_path)
            self.cfg = resolve_config(_merge_resume(given, self.ckpt["config"], self.ckpt_path))
        else:
            self.cfg = resolve_config(given)
        self.progress = progress
        self.history: list[float] = []
        self.metrics: dict | None = None

    # -- setup -----------------------------------------------------------------------------------

    def _setup(self) -> None:
        from hyperdml.data import ClassBalancedSampler, DistributedClassBalancedSampler, build_datasets
        from hyperdml.models import build_model
        from hyperdml.optim import make_optimizer
        from hyperdml.train.losses import build_loss, head_spaces

        cfg = self.cfg
        self.rank, self.world, self.device = setup_distributed(device=cfg["device"])
        if cfg["amp"] == "fp16" and self.device.type != "cuda":
            raise ConfigError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
        if cfg["batch_size"] % self.world:
            raise ConfigError(f"--batch-size {cfg['batch_size']} (the global batch) must be divisible by the "
                              f"{self.world} processes")
        self.is_main = self.rank == 0
        self.out = cfg["out"]
        if self.is_main:
            os.makedirs(self.out, exist_ok=True)
        seed_everything(cfg["seed"])
        self.splits = build_datasets(cfg["dataset"], cfg["data_root"], image_size=cfg["image_size"],
                                     seed=cfg["data_seed"], label_noise=cfg["label_noise"])
        s = self.splits
        cfg["in_channels"], cfg["num_classes"] = int(s.channels), int(s.num_train_classes)
        if cfg["image_size"] is None:
            cfg["image_size"] = int(s.image_size)
        labels = s.train.labels
        if self.world == 1:
            self.sampler = ClassBalancedSampler(labels, cfg["batch_size"], cfg["samples_per_class"],
                                                seed=cfg["seed"], drop_last=True)
        else:
            self.sampler = DistributedClassBalancedSampler(labels, cfg["batch_size"] // self.world,
                                                           cfg["samples_per_class"], num_replicas=self.world,
                                                           rank=self.rank, seed=cfg["seed"])
        self.steps_per_epoch = len(self.sampler)
        if self.steps_per_epoch < 1:
            raise ConfigError(f"the training split ({len(labels)} images) gives no full batch of {cfg['batch_size']}")
        spaces = checkpoint_spaces(self.ckpt) if self.ckpt is not None else head_spaces(cfg)
        self.model = build_model(cfg["arch"], embedding_size=cfg["embedding_size"], head=cfg["head"],
                                 hyperbolic_size=cfg["hyperbolic_size"], spaces=spaces,
                                 in_channels=cfg["in_channels"], weights=cfg["weights"]).to(self.device)
        self.loss = build_loss(cfg, cfg["num_classes"], spaces=spaces).to(self.device)
        self.optimizer = make_optimizer(self.model.backbone, self.loss, self.model.heads, lr=cfg["lr"],
                                        head_lr_mult=cfg["head_lr_mult"], proxy_lr_mult=cfg["proxy_lr_mult"],
                                        weight_decay=cfg["weight_decay"], eps=cfg["adam_eps"])
        total = cfg["epochs"] * self.steps_per_epoch
        if cfg["max_steps"] is not None:
            total = min(total, cfg["max_steps"])
        self.schedule = WarmupSchedule(self.optimizer, total_steps=cfg["epochs"] * self.steps_per_epoch,
                                       warmup_steps=round(cfg["warmup_epochs"] * self.steps_per_epoch),
                                       kind=cfg["schedule"], min_mult=cfg["min_lr_mult"],
                                       step_size=cfg["step_every"] * self.steps_per_epoch)
        self.total_steps = total
        self.scaler = torch.amp.GradScaler("cuda") if cfg["amp"] == "fp16" else None
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg["amp"])
        self.epoch, self.step = 0, 0
        if self.ckpt is not None:
            self._load_state(self.ckpt)
        self.net = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            if self.device.type == "cuda":
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.net = DDP(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
        self.loss_params = [p for p in self.loss.parameters() if p.requires_grad]
        if self.world > 1:
            # The loss gets the all-gathered global batch: a CalibrateProxy enqueues it as is
            # instead of gathering it again (the trainer owns this loss; nothing to restore).
            for m in self.loss.modules():
                if hasattr(m, "gather_queue"):
                    m.gather_queue = False
        self.log = _JsonLog(os.path.join(self.out, "log.jsonl") if self.is_main else None,
                            truncate_after_step=self.step if self.ckpt is not None else None)

    def _load_state(self, ckpt: dict) -> None:
        from hyperdml.errors import CheckpointError

        load_state(self.model, ckpt["model"], "model")
        load_state(self.loss, ckpt["loss"], "loss")
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"cannot load the checkpoint's optimizer state: {exc}") from None
        # torch's Optimizer.load_state_dict turns Adam's "step" into a float32 tensor; geoopt's
        # RiemannianAdam keeps a Python int (bias corrections in float64): restore the int, or the
        # resumed run drifts from the uninterrupted one by float32 rounding.
        for st in self.optimizer.state.values():
            if isinstance(st.get("step"), torch.Tensor) and st["step"].dim() == 0:
                st["step"] = int(st["step"].item())
        if ckpt.get("scheduler"):
            self.schedule.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        spe = (ckpt.get("sampler") or {}).get("steps_per_epoch")
        if spe is not None and int(spe) != self.steps_per_epoch:
            raise CheckpointError(f"the checkpoint was written with {spe} steps per epoch, this run has "
                                  f"{self.steps_per_epoch} (different data or batch size)")
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        set_rng_state(ckpt.get("rng") or {})
        self.metrics = ckpt.get("metrics")

    # -- checkpoint --------------------------------------------------------------------------------

    def state(self) -> dict:
        """The checkpoint dict of the current state (see :mod:`hyperdml.train.checkpoint`)."""
        s = self.splits
        return {
            "format": FORMAT, "version": VERSION, "config": dict(self.cfg),
            "epoch": self.epoch, "step": self.step,
            "spaces": {head: space.config() for head, space in self.model.spaces.items()},
            "model": self.model.state_dict(), "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_state(),
            "sampler": {"seed": self.cfg["seed"], "epoch": self.epoch, "steps_per_epoch": self.steps_per_epoch,
                        "position": self.step - self.epoch * self.steps_per_epoch},
            "metrics": self.metrics,
            "class_names": list(s.train_class_names),
            "super_labels": None if s.train_super_labels is None else [int(v) for v in s.train_super_labels],
            "super_class_names": None if s.super_class_names is None else list(s.super_class_names),
        }

    def save(self, name: str = "last.pt") -> str | None:
        """Rank 0 writes the checkpoint ``<out>/<name>`` atomically; all ranks wait for it."""
        path = os.path.join(self.out, name)
        if self.is_main:
            save_checkpoint(path, self.state())
        self._barrier()
        return path

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    # -- evaluation --------------------------------------------------------------------------------

    def evaluate(self) -> dict | None:
        """Rank 0 evaluates every head on the test split (global RNG untouched), writes
        ``metrics.json`` and a log record; returns ``{head: metrics}`` (None on other ranks)."""
        result = None
        if self.is_main:
            t0 = time.perf_counter()
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                heads = evaluate_model(self.model, self.splits, batch_size=self.cfg["eval_batch_size"], device=self.device,
                                       workers=self.cfg["workers"])
            self.metrics = {"epoch": self.epoch, "step": self.step, "dataset": self.cfg["dataset"],
                            "loss": self.cfg["loss"], "heads": heads}
            _write_json(os.path.join(self.out, "metrics.json"), self.metrics)
            self.log.write({"event": "eval", "epoch": self.epoch, "step": self.step, "heads": heads,
                            "seconds": round(time.perf_counter() - t0, 3)})
            result = heads
        self._barrier()
        return result

    # -- training --------------------------------------------------------------------------------

    def _gather(self, t: torch.Tensor, with_grad: bool) -> torch.Tensor:
        if self.world == 1:
            return t
        return all_gather_with_grad(t) if with_grad else all_gather_no_grad(t)

    def _loss(self, out: dict, labels: torch.Tensor) -> torch.Tensor:
        if self.cfg["head"] == "dual":
            return self.loss(out["euclidean"], out["hyperbolic"], labels)
        return self.loss(out[self.cfg["head"]], labels)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One optimiser step on this process's batch; returns the (global-batch) loss value."""
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            out = self.net(images)
        out = {k: self._gather(v.float(), True) for k, v in out.items()}
        labels = self._gather(labels, False)
        loss = self._loss(out, labels)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise HyperdmlError(f"the loss is {value} at step {self.step + 1} (epoch {self.epoch + 1}); "
                                "lower --lr, set --grad-clip, or disable --amp")
        self.optimizer.zero_grad(set_to_none=True)
        # With W processes each computes the same global-batch loss L. all_gather_with_grad sums
        # the gradients every process sends to this process's rows (W·dL/dz_local), and DDP
        # averages the network's gradients over processes: the network gets dL/dθ. The proxies get
        # dL/dp on every process; they are averaged all the same, to keep the replicas identical.
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.world > 1:
            self._sync_loss_grads()
        if self.cfg["grad_clip"] is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.cfg["grad_clip"])
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.schedule.step()
        self.step += 1
        return value

    def _sync_loss_grads(self) -> None:
        """Average the loss's (proxies') gradients over processes (one all_reduce)."""
        import torch.distributed as dist

        grads = [p.grad for p in self.loss_params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= float(self.world)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n

    def _show_progress(self) -> bool:
        if self.progress is not None:
            return bool(self.progress) and self.is_main
        return self.is_main and not self.cfg["quiet"] and sys.stderr.isatty()

    def _print(self, text: str) -> None:
        if self.is_main and not self.cfg["quiet"]:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stdout)

    def fit(self) -> dict | None:
        """Train to ``epochs`` (or ``max_steps``), evaluating and checkpointing; returns the last
        evaluation's ``{head: metrics}`` (on rank 0; None elsewhere)."""
        from torch.utils.data import DataLoader
        from tqdm import tqdm

        self._setup()
        cfg = self.cfg
        if self.is_main:
            _write_json(os.path.join(self.out, "config.json"), cfg)
            if self.ckpt is None:
                self.log.write({"event": "start", "step": 0, "config": cfg, "world_size": self.world,
                                "device": str(self.device), "steps_per_epoch": self.steps_per_epoch})
            else:
                self.log.write({"event": "resume", "step": self.step, "epoch": self.epoch,
                                "checkpoint": self.ckpt_path})
        self.model.train()
        self.loss.train()
        last_heads, evaluated = None, False
        stopped = self.step >= self.total_steps
        while self.epoch < cfg["epochs"] and not stopped:
            epoch = self.epoch
            self.sampler.set_epoch(epoch)
            self.loss.set_epoch(epoch)
            position = self.step - epoch * self.steps_per_epoch
            batches = list(self.sampler)[position:]
            loader = DataLoader(self.splits.train, batch_sampler=batches, num_workers=cfg["workers"],
                                pin_memory=self.device.type == "cuda",
                                generator=torch.Generator().manual_seed(cfg["seed"] * 1000 + epoch))
            t0, losses = time.perf_counter(), []
            bar = tqdm(loader, total=len(batches), desc=f"epoch {epoch + 1}/{cfg['epochs']}", leave=False,
                       disable=not self._show_progress(), dynamic_ncols=True)
            for images, labels in bar:
                value = self.train_step(images, labels)
                losses.append(value)
                self.history.append(value)
                bar.set_postfix(loss=f"{value:.4f}")
                if self.step % cfg["log_every"] == 0:
                    rec = {"event": "step", "epoch": epoch, "step": self.step, "loss": value,
                           "lr": self.optimizer.param_groups[-1]["lr"]}
                    if self.loss.parts:
                        rec["parts"] = {k: float(v) for k, v in self.loss.parts.items()}
                    self.log.write(rec)
                if self.step >= self.total_steps:
                    stopped = True
                    break
            bar.close()
            finished = self.step == (epoch + 1) * self.steps_per_epoch
            if finished:
                self.epoch = epoch + 1
            seconds = time.perf_counter() - t0
            mean = sum(losses) / max(len(losses), 1)
            if self.is_main:
                self.log.write({"event": "epoch", "epoch": epoch, "step": self.step, "mean_loss": mean,
                                "finished": finished, "seconds": round(seconds, 3)})
            last = stopped or self.epoch >= cfg["epochs"]
            evaluate = last or (finished and cfg["eval_every"] and self.epoch % cfg["eval_every"] == 0)
            line = f"epoch {epoch + 1}/{cfg['epochs']}  step {self.step}  loss {mean:.4f}  ({seconds:.1f} s)"
            if evaluate:
                last_heads, evaluated = self.evaluate(), True
                if last_heads:
                    line += "  " + "  ".join(f"R@1 {h} {100 * m['recall@1']:.2f}" for h, m in last_heads.items())
            self._print(line)
            self.save()
        if not evaluated:  # nothing left to train (a resumed run that had finished)
            if self.metrics is None:
                last_heads = self.evaluate()  # every rank calls it (a barrier inside)
            elif self.is_main:
                last_heads = self.metrics.get("heads")
        return last_heads

    def run(self) -> dict | None:
        """:meth:`fit` under the config's ``deterministic`` setting, then the process group torn
        down when torchrun started this process (what :func:`train` does)."""
        distributed_here = env_world_size() > 1
        try:
            with _deterministic(self.cfg["deterministic"]):
                return self.fit()
        finally:
            if distributed_here:
                cleanup_distributed()


@contextlib.contextmanager
def _deterministic(enabled: bool):
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def train(config: dict, *, resume: str | None = None, progress: bool | None = None) -> dict | None:
    """Train from a config dict (see :data:`hyperdml.train.config.DEFAULTS`), return the final metrics.

    Args:
        config: options (missing ones take their defaults); ``config["resume"]`` or ``resume``:
            a checkpoint file or run folder to continue (its config is used; only
            :data:`RESUME_OVERRIDES` may change).
        progress: force tqdm bars on/off (default: on a terminal unless ``quiet``).

    Returns:
        ``{head: {"recall@1", ..., "map@r", "r_precision", "nmi"}}`` of the last evaluation on
        rank 0 (None on the other ranks). Files in ``config["out"]``: ``last.pt``, ``log.jsonl``,
        ``metrics.json``, ``config.json``.
    """
    return Trainer(config, resume=resume, progress=progress).run()
