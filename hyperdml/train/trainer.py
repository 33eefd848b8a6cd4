"""The training loop behind ``hyperdml train``: :func:`train` (and :class:`Trainer`).

One process, or one of ``N`` under ``torchrun`` (DDP). :class:`Trainer` builds the run
(:func:`~hyperdml.train.setup.build_run`) in a locked run folder
(:mod:`~hyperdml.train.run_folder`), possibly from a checkpoint (:mod:`~hyperdml.train.resume`),
then trains epoch by epoch, one :class:`~hyperdml.train.step.TrainStep` per batch (which also
stops a run that diverged). An epoch ends with an evaluation when due, then the checkpoint
``<out>/last.pt``, and only once it is written ``<out>/metrics.json`` and the epoch's records in
``<out>/log.jsonl`` (which also gets a record every ``log_every`` steps). In every record
``epoch`` is 1-based, as in the printed lines; a checkpoint's ``epoch`` counts finished epochs.

Reproducibility: everything random is seeded from ``seed`` (model and proxy initialisation, the
batch sampler per epoch, the losses' own generators in their state dicts). A checkpoint stores
all of it and the position in the epoch, so a resumed run continues exactly as the uninterrupted
one (with ``workers=0`` or deterministic transforms: augmentations in worker processes are
seeded per epoch, not per step).
"""

from __future__ import annotations

import math
import os
import sys
import time

import torch
from torch import nn

from hyperdml._progress import Progress
from hyperdml.errors import ConfigError
from hyperdml.train.checkpoint import (FORMAT, VERSION, check_sizes, checkpoint_spaces, load_checkpoint, load_state,
                                       save_checkpoint)
from hyperdml.train.config import RUN_OPTIONS, resolve_config
from hyperdml.train.distributed import cleanup_distributed, env_world_size, setup_distributed
from hyperdml.train.evaluate import evaluate_model
from hyperdml.train.resume import RESUME_OVERRIDES, resolve_resume_path, restore_training_state, resumed_config
from hyperdml.train.rng import deterministic, rng_state, seed_everything
from hyperdml.train.run_folder import JsonLog, RunFolder, writing
from hyperdml.train.setup import build_run
from hyperdml.train.step import TrainStep

__all__ = ["Trainer", "train", "resolve_resume_path", "RESUME_OVERRIDES"]


class Trainer:
    """Builds data, model, loss, optimiser and schedule from a config, and runs the loop.

    Args:
        config: training options (see :data:`hyperdml.train.config.DEFAULTS`); may hold
            ``"resume"`` (checkpoint file or run folder) and ``"overwrite"``.
        resume: same as ``config["resume"]``.
        progress: show progress (a tqdm bar on a terminal, a plain line every 30 s otherwise);
            default: on unless ``quiet``, on the first process only.
        overwrite: start a new run in an ``out`` folder that holds another run's files (they
            are removed); without it such a folder is refused.

    After :meth:`fit`: :attr:`history` (per-step losses), :attr:`metrics` (last evaluation).
    """

    def __init__(self, config: dict, resume: str | None = None, progress: bool | None = None,
                 overwrite: bool | None = None):
        given = dict(config or {})
        resume = resume or given.get("resume")
        self.overwrite = bool(given.get("overwrite") if overwrite is None else overwrite)
        given = {k: v for k, v in given.items() if k not in RUN_OPTIONS}
        self.ckpt, self.ckpt_path = None, None
        if resume:
            self.ckpt_path = resolve_resume_path(resume)
            self.ckpt = load_checkpoint(self.ckpt_path)
            check_sizes(self.ckpt)
            self.cfg = resolve_config(resumed_config(given, self.ckpt, self.ckpt_path))
        else:
            self.cfg = resolve_config(given)
        self.progress = progress
        self.history: list[float] = []
        self.metrics: dict | None = None
        self.folder: RunFolder | None = None

    # -- set-up ----------------------------------------------------------------------------------

    def _setup(self) -> None:
        from hyperdml.models import HEAD_NAMES

        cfg = self.cfg
        self.rank, self.world, self.device = setup_distributed(device=cfg["device"])
        if cfg["amp"] == "fp16" and self.device.type != "cuda":
            raise ConfigError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
        if cfg["batch_size"] % self.world:
            raise ConfigError(f"--batch-size {cfg['batch_size']} (the global batch) must be divisible by the "
                              f"{self.world} processes")
        self.is_main = self.rank == 0
        self.out = cfg["out"]
        self._open_folder()
        seed_everything(cfg["seed"])
        parts = build_run(cfg, device=self.device, world=self.world, rank=self.rank,
                          spaces=checkpoint_spaces(self.ckpt) if self.ckpt is not None else None)
        self.splits, self.sampler, self.steps_per_epoch = parts.splits, parts.sampler, parts.steps_per_epoch
        self.total_steps, self.model, self.loss = parts.total_steps, parts.model, parts.loss
        self.optimizer, self.schedule, self.scaler = parts.optimizer, parts.schedule, parts.scaler
        self.epoch, self.step = 0, 0
        if self.ckpt is not None:
            load_state(self.model, self.ckpt["model"], "model")
            load_state(self.loss, self.ckpt["loss"], "loss")
            self.epoch, self.step = restore_training_state(self.ckpt, optimizer=self.optimizer, schedule=self.schedule,
                                                           scaler=self.scaler, steps_per_epoch=self.steps_per_epoch)
            self.metrics = self.ckpt.get("metrics")
        self.net = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            if self.device.type == "cuda":
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.net = DDP(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
            # the step passes the all-gathered global batch (a CalibrateProxy enqueues it as is)
            self.loss.set_gathered_inputs(True)
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg["amp"])
        self.stepper = TrainStep(self.net, self.loss, HEAD_NAMES[cfg["head"]], self.optimizer, self.schedule,
                                 device=self.device, amp_dtype=amp_dtype, scaler=self.scaler,
                                 grad_clip=cfg["grad_clip"], world=self.world, lr=cfg["lr"])
        self.log = JsonLog(self.folder.file("log.jsonl") if self.folder else None,
                           truncate_after_step=self.step if self.ckpt is not None else None)

    def _open_folder(self) -> None:
        """Rank 0 creates and locks the run folder; every rank learns whether that failed."""
        error = None
        if self.is_main:
            try:
                self.folder = RunFolder.open(self.out, resume_from=self.ckpt_path, overwrite=self.overwrite)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after telling the other ranks
                error = exc
        if self.world > 1:
            import torch.distributed as dist

            message = [None if error is None else str(error)]
            dist.broadcast_object_list(message, src=0)
            if error is None and message[0] is not None:
                raise ConfigError(f"process 0 could not open the run folder: {message[0]}")
        if error is not None:
            raise error

    # -- checkpoint ------------------------------------------------------------------------------

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

    def save(self, name: str = "last.pt") -> str:
        """Rank 0 writes the checkpoint ``<out>/<name>`` atomically; all ranks wait for it."""
        path = os.path.join(self.out, name)
        if self.is_main:
            with writing(path):
                save_checkpoint(path, self.state())
        self._barrier()
        return path

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    # -- evaluation ------------------------------------------------------------------------------

    def _epoch_number(self) -> int:
        """The 1-based number of the epoch of the last step done (0 before the first step)."""
        return math.ceil(self.step / self.steps_per_epoch)

    def _evaluate(self) -> tuple[dict | None, dict | None]:
        """Rank 0 evaluates every head on the test split (global RNG untouched) and sets
        :attr:`metrics`; returns ``(heads, log record)`` (``(None, None)`` on other ranks)."""
        if not self.is_main:
            return None, None
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            heads = evaluate_model(self.model, self.splits, batch_size=self.cfg["eval_batch_size"], device=self.device,
                                   workers=self.cfg["workers"], progress=self._show_progress())
        epoch = self._epoch_number()
        self.metrics = {"epoch": epoch, "step": self.step, "dataset": self.cfg["dataset"], "loss": self.cfg["loss"],
                        "heads": heads}
        return heads, {"event": "eval", "epoch": epoch, "step": self.step, "heads": heads,
                       "seconds": round(time.perf_counter() - t0, 3)}

    def evaluate(self) -> dict | None:
        """Rank 0 evaluates every head on the test split, writes ``metrics.json`` and a log
        record; returns ``{head: metrics}`` (None on other ranks)."""
        heads, record = self._evaluate()
        if self.is_main:
            self._record(record)
        self._barrier()
        return heads

    def _record(self, *records) -> None:
        """After a checkpoint (or an evaluation) is safely written: metrics.json and log records."""
        for record in records:
            if record is None:
                continue
            if record["event"] == "eval":
                self.folder.write_json("metrics.json", self.metrics)
            self.log.write(record)

    # -- training --------------------------------------------------------------------------------

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One optimiser step on this process's batch; returns the (global-batch) loss value."""
        step = self.step + 1
        value = self.stepper(images, labels, step, math.ceil(step / self.steps_per_epoch))
        self.step = step
        return value

    def _show_progress(self) -> bool:
        if self.progress is not None:
            return bool(self.progress) and self.is_main
        return self.is_main and not self.cfg["quiet"]

    def _print(self, text: str) -> None:
        if self.is_main and not self.cfg["quiet"]:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stdout)

    def _train_epoch(self, epoch: int) -> tuple[list[float], bool]:
        """Train epoch ``epoch`` (0-based) from the current position; returns its losses and whether
        ``max_steps`` stopped it."""
        from torch.utils.data import DataLoader

        cfg = self.cfg
        self.sampler.set_epoch(epoch)
        self.loss.set_epoch(epoch)
        batches = list(self.sampler)[self.step - epoch * self.steps_per_epoch:]
        loader = DataLoader(self.splits.train, batch_sampler=batches, num_workers=cfg["workers"],
                            pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(cfg["seed"] * 1000 + epoch))
        bar = Progress(loader, len(batches), f"epoch {epoch + 1}/{cfg['epochs']}", self._show_progress(), unit="steps")
        losses, stopped = [], False
        try:
            for images, labels in bar:
                value = self.train_step(images, labels)
                losses.append(value)
                self.history.append(value)
                bar.set_postfix(loss=f"{value:.4f}")
                if self.step % cfg["log_every"] == 0:
                    rec = {"event": "step", "epoch": epoch + 1, "step": self.step, "loss": value,
                           "lr": self.optimizer.param_groups[-1]["lr"]}
                    if self.loss.parts:
                        rec["parts"] = {k: float(v) for k, v in self.loss.parts.items()}
                    self.log.write(rec)
                if self.step >= self.total_steps:
                    stopped = True
                    break
        finally:
            bar.close()
        return losses, stopped

    def fit(self) -> dict | None:
        """Train to ``epochs`` (or ``max_steps``), evaluating and checkpointing; returns the last
        evaluation's ``{head: metrics}`` (on rank 0; None elsewhere)."""
        try:
            return self._fit()
        finally:
            if self.folder is not None:
                self.folder.close()

    def _fit(self) -> dict | None:
        self._setup()
        cfg = self.cfg
        if self.is_main:
            self.folder.write_json("config.json", cfg)
            if self.ckpt is None:
                self.log.write({"event": "start", "step": 0, "config": cfg, "world_size": self.world,
                                "device": str(self.device), "steps_per_epoch": self.steps_per_epoch})
            else:
                self.log.write({"event": "resume", "step": self.step, "epoch": self._epoch_number(),
                                "checkpoint": self.ckpt_path})
        self.model.train()
        self.loss.train()
        last_heads, evaluated = None, False
        stopped = self.step >= self.total_steps
        while self.epoch < cfg["epochs"] and not stopped:
            epoch, t0 = self.epoch, time.perf_counter()
            losses, stopped = self._train_epoch(epoch)
            finished = self.step == (epoch + 1) * self.steps_per_epoch
            if finished:
                self.epoch = epoch + 1
            seconds = time.perf_counter() - t0
            mean = sum(losses) / max(len(losses), 1)
            records = [{"event": "epoch", "epoch": epoch + 1, "step": self.step, "mean_loss": mean,
                        "finished": finished, "seconds": round(seconds, 3)}]
            last = stopped or self.epoch >= cfg["epochs"]
            line = f"epoch {epoch + 1}/{cfg['epochs']}  step {self.step}  loss {mean:.4f}  ({seconds:.1f} s)"
            if last or (finished and cfg["eval_every"] and self.epoch % cfg["eval_every"] == 0):
                last_heads, record = self._evaluate()
                evaluated = True
                records.append(record)
                if last_heads:
                    line += "  " + "  ".join(f"R@1 {h} {100 * m['recall@1']:.2f}" for h, m in last_heads.items())
            self.save()  # first the checkpoint; the files that describe it only once it is written
            if self.is_main:
                self._record(*records)
            self._print(line)
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
            with deterministic(self.cfg["deterministic"]):
                return self.fit()
        finally:
            if distributed_here:
                cleanup_distributed()


def train(config: dict, *, resume: str | None = None, progress: bool | None = None,
          overwrite: bool | None = None) -> dict | None:
    """Train from a config dict (see :data:`hyperdml.train.config.DEFAULTS`), return the final metrics.

    Args:
        config: options (missing ones take their defaults); ``config["resume"]`` or ``resume``:
            a checkpoint file or run folder to continue (its config is used; only
            :data:`RESUME_OVERRIDES` may change).
        progress: force progress display on/off (default: on unless ``quiet``).
        overwrite: replace a run already in ``config["out"]`` (default: such a folder is refused).

    Returns:
        ``{head: {"recall@1", ..., "map@r", "r_precision", "nmi"}}`` of the last evaluation on
        rank 0 (None on the other ranks). Files in ``config["out"]``: ``last.pt``, ``log.jsonl``,
        ``metrics.json``, ``config.json``.
    """
    return Trainer(config, resume=resume, progress=progress, overwrite=overwrite).run()
