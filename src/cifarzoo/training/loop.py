""":func:`fit`: the training loop.

One process, or several under ``torchrun`` (DistributedDataParallel, detected from the
``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` environment variables). Checkpoints are written atomically
every epoch and on Ctrl-C or SIGTERM; ``RunOptions(resume=True)`` continues bit-identically on
the CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import Tensor, nn

from ..checkpoint import CHECKPOINT_NAME, save_checkpoint
from ..devices import autocast
from ..formats import percent
from ..heap import kept_heap
from ..metrics import EvalResult, evaluate
from ..runs.folder import check_run_folder, clear_run
from .distill import Teacher
from .distributed import DistEnv, process_group, training_device
from .extras import Backward, ModelEma, frozen_norm_statistics, step_extras
from .history import History
from .inputs import EvalData, TrainData, check_outputs, data_fingerprint, split_data
from .loaders import run_loaders
from .nonfinite import non_finite_message, weights_are_finite
from .optimizer import make_optimizer, make_schedule
from .options import RunOptions
from .progress import Progress, StopRequest, log
from .recipe import Recipe
from .state import (
    EpochProgress,
    TrainState,
    model_name,
    rng_state,
    set_rng_state,
)

__all__ = ["NonFiniteLossError", "fit"]

#: Training steps between loss checks: each check waits for the device, which costs nothing on
#: the CPU but stalls a GPU's queue.
SYNC_EVERY_CPU = 1
SYNC_EVERY_ACCELERATOR = 25


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; training stopped, the checkpoint is kept."""


def fit(
    model: nn.Module,
    data: TrainData,
    recipe: Recipe | None = None,
    options: RunOptions | None = None,
    *,
    teacher: Teacher | None = None,
    eval_data: EvalData | None = None,
    model_args: Mapping[str, Any] | None = None,
) -> History:
    """Train ``model`` on CIFAR-10-style data with ``recipe`` and return its :class:`History`.

    Args:
        model: any classifier ``nn.Module`` (images normalized with its ``pretrained_cfg``
            mean/std when it has one, else CIFAR-10's).
        data: a :class:`~cifarzoo.data.CIFAR10Data` (trains on ``train``, evaluates on ``val``
            if present, else ``test``), a :class:`~cifarzoo.data.Split`, or ``(images, labels)``
            with uint8 images ``[N, 3, 32, 32]`` (or NHWC), tensors or numpy arrays; the labels
            may be soft (``[N, classes]`` float rows).
        recipe: what to train with (:class:`Recipe`; default ``Recipe()``). ``batch_size`` is
            global: under ``torchrun`` each of the N processes takes ``batch_size // N``.
        options: how to run (:class:`RunOptions`: device, bf16, checkpoints, resume, TTA of the
            evaluations...; default ``RunOptions()``). With ``resume=True`` the recipe must be
            the checkpoint's (:class:`RecipeMismatchError` otherwise) and so must the data
            (:class:`DataMismatchError`; see :func:`data_fingerprint`). A ``checkpoint_dir``
            that holds a run is refused unless ``resume=True`` continues it or
            ``overwrite=True`` replaces it (deleted when training starts).
        teacher: distill from this model (its flip-TTA logits on the training images, computed
            once before training), from a list of models (an ensemble: their averaged
            probabilities), or from precomputed logits ``[N_train, C]``. Needs
            ``recipe.distill_weight > 0``, which in turn needs a teacher.
        eval_data: evaluate on this instead of the split chosen from ``data``.
        model_args: the constructor arguments ``model`` was built with (``create_model(name,
            **model_args)``; plain values: numbers, strings, booleans, lists), recorded in the
            checkpoint; a resume refuses other ones (:class:`ModelArgsMismatchError`).
            ``None``: not recorded, not checked.

    When training completes, ``model`` holds the EMA weights if EMA is on (the weights that
    ``History.eval_*`` measured); the raw weights stay in the checkpoint (``"model"``).

    Raises:
        NonFiniteLossError: the loss (or the weights) became NaN/inf; the last good checkpoint
            is kept (also when Ctrl-C comes after such a step: nothing is saved then).
        KeyboardInterrupt: after Ctrl-C or SIGTERM, once a checkpoint was written (if
            ``checkpoint_dir``).
        ValueError: bad input, e.g. labels outside ``0..num_classes - 1`` or a checkpoint that
            cannot be read (the message names the file and what to do).
    """
    recipe = Recipe() if recipe is None else recipe
    options = RunOptions() if options is None else options
    if (teacher is None) != (recipe.distill_weight == 0):
        raise ValueError(
            "distillation needs both a teacher and distill_weight > 0: got "
            f"teacher={'None' if teacher is None else type(teacher).__name__} and "
            f"distill_weight={recipe.distill_weight}"
        )
    if options.checkpoint_dir is not None:
        folder = Path(options.checkpoint_dir)
        check_run_folder(folder, resume=options.resume, overwrite=options.overwrite)
    env = DistEnv.from_env()
    device = training_device(options.device, env)
    with process_group(env, device):
        args = None if model_args is None else dict(model_args)
        return _Trainer(model, data, recipe, options, eval_data, device, env, teacher, args).run()


class _Trainer:
    def __init__(
        self,
        model: nn.Module,
        data: TrainData,
        recipe: Recipe,
        options: RunOptions,
        eval_data: EvalData | None,
        device: torch.device,
        env: DistEnv,
        teacher: Teacher | None = None,
        model_args: dict[str, Any] | None = None,
    ) -> None:
        self.recipe, self.options, self.device, self.env = recipe, options, device, env
        self.model_args = model_args
        self.quiet = options.quiet or not env.is_main
        folder = options.checkpoint_dir
        self.ckpt_path = Path(folder) / CHECKPOINT_NAME if folder else None
        self.amp = options.resolved_amp(device)
        self.sync_every = SYNC_EVERY_CPU if device.type == "cpu" else SYNC_EVERY_ACCELERATOR
        train, ev, self.eval_split = split_data(data, eval_data)
        self.loader, self.eval_loader = run_loaders(
            model,
            train,
            ev,
            self.eval_split,
            teacher,
            recipe=recipe,
            options=options,
            env=env,
            device=device,
            amp=self.amp,
            log=self._log,
        )
        self.fingerprint = (
            data_fingerprint(train, ev, self.eval_split) if self.ckpt_path is not None else None
        )
        model.to(device)
        if options.channels_last:
            model.to(memory_format=torch.channels_last)
        if recipe.sync_bn and env.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
        self.model = model
        self.steps = len(self.loader)
        self.opt = make_optimizer(model, recipe)
        self.schedule = make_schedule(recipe, self.steps)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self.schedule)
        self.ema = ModelEma(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
        self.extras = step_extras(recipe, self.ema)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        train_model: nn.Module = model
        if env.distributed:
            from torch.nn.parallel import DistributedDataParallel

            train_model = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        if options.compile:
            train_model = torch.compile(train_model)  # type: ignore[assignment]
        self.train_model = train_model
        self.history = History(eval_split=self.eval_split)
        self._outputs_checked = False

    # -- checkpoints --------------------------------------------------------------------------

    def _state(self, epoch: int, step: int, progress: EpochProgress | None) -> TrainState:
        return TrainState(
            model=self.model.state_dict(),
            optimizer=self.opt.state_dict(),
            scheduler=self.sched.state_dict(),
            ema=self.ema.state_dict() if self.ema is not None else None,
            epoch=epoch,
            step=step,
            progress=progress,
            rng=rng_state(self.device),
            loader=self.loader.state_dict(),
            history=self.history,
            recipe=self.recipe,
            options={**self.options.recorded(), "amp": self.amp},  # the precision that ran
            model_name=model_name(self.model),
            model_args=self.model_args,
            world_size=self.env.world_size,
            data=self.fingerprint,
            threads=torch.get_num_threads(),
        )

    def _save(self, epoch: int, step: int, progress: EpochProgress | None = None) -> None:
        if self.ckpt_path is None:
            return
        if self.env.is_main:
            save_checkpoint(self._state(epoch, step, progress).to_dict(), self.ckpt_path)
        if self.env.distributed:
            import torch.distributed as dist

            dist.barrier()

    def _load(self) -> TrainState:
        assert self.ckpt_path is not None
        state = TrainState.read(self.ckpt_path, map_location=self.device)
        state.check_resumable(
            self.ckpt_path,
            self.recipe,
            self.options,
            data=self.fingerprint,
            world_size=self.env.world_size,
            device_type=self.device.type,
            threads=torch.get_num_threads(),
            model_args=self.model_args,
            log=self._log,
        )
        try:
            self.model.load_state_dict(state.model)
        except RuntimeError as e:
            raise ValueError(self._other_model(state, e)) from e
        self.opt.load_state_dict(state.optimizer)
        self.sched.load_state_dict(state.scheduler)
        if self.ema is not None:
            assert state.ema is not None
            self.ema.load_state_dict(state.ema)
        set_rng_state(state.rng, self.device)
        self.loader.load_state_dict(state.loader)
        self.history = state.history
        return state

    def _other_model(self, state: TrainState, e: RuntimeError) -> str:
        if state.model_name is None:  # a checkpoint older than the name: torch's first line
            what = f"another model ({str(e).strip().splitlines()[0]})"
        else:
            what = f"{state.model_name}, not {model_name(self.model)}"
        return (
            f"cannot resume {self.ckpt_path}: it holds the weights of {what}. Resume with the "
            "model that wrote it, or start a new run in another checkpoint_dir (CLI: --out)"
        )

    # -- loop ---------------------------------------------------------------------------------

    def _log(self, msg: str) -> None:
        if not self.quiet:
            log(msg)

    def run(self) -> History:
        """Train with the global RNG seeded from the recipe's seed (or restored from the
        checkpoint), then give the caller's RNG state back; on a CPU, freed memory is kept for
        the next step (:func:`~cifarzoo.heap.kept_heap`)."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), kept_heap(self.device.type == "cpu"):
            torch.manual_seed(self.recipe.seed)
            return self._run()

    def _run(self) -> History:
        start_epoch, start_step, progress = 0, 0, None
        if self.options.resume and self.ckpt_path is not None and self.ckpt_path.is_file():
            state = self._load()
            start_epoch, start_step, progress = state.epoch, state.step, state.progress
            self._log(
                f"resuming from {self.ckpt_path} at epoch {start_epoch + 1}, step {start_step}"
            )
        elif self.options.resume and self.env.is_main:  # said even when quiet: no resume
            log(f"no checkpoint at {self.ckpt_path}: starting a new run, not resuming one")
        elif self.options.overwrite and self.ckpt_path is not None and self.env.is_main:
            clear_run(self.ckpt_path.parent)  # only now: the model, data and recipe passed
        with StopRequest(enabled=not self.env.distributed) as stop:
            for epoch in range(start_epoch, self.recipe.epochs):
                first = epoch == start_epoch
                self._run_epoch(
                    epoch, start_step if first else 0, progress if first else None, stop
                )
        if self.ema is not None:  # leave the model with the weights that were evaluated
            self.model.load_state_dict(self.ema.module.state_dict())
        return self.history

    def _backward_again(self, x: Tensor, y: Tensor) -> None:
        """The gradients of ``(x, y)`` at the current weights, batch-norm statistics frozen."""
        self.opt.zero_grad(set_to_none=True)
        with frozen_norm_statistics(self.model), autocast(self.device, self.amp):
            out = self.train_model(x)
        self.criterion(out.float(), y).backward()

    def _train_step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """One optimizer step on the batch ``(x, y)``; returns its (detached) loss and logits."""
        with autocast(self.device, self.amp):
            out = self.train_model(x)
        if not self._outputs_checked:
            check_outputs(out, self.loader)
            self._outputs_checked = True
        loss = self.criterion(out.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        backward = Backward(self.model, lambda: self._backward_again(x, y))
        for extra in self.extras:
            extra.after_backward(backward)
        self.opt.step()
        self.sched.step()
        for extra in self.extras:
            extra.after_update(self.model)
        return loss.detach(), out.detach()

    def _run_epoch(
        self, epoch: int, start: int, progress: EpochProgress | None, stop: StopRequest
    ) -> None:
        dev = self.device
        t0 = time.perf_counter()
        seconds = progress.seconds if progress else 0.0
        losses = torch.zeros(self.steps, dtype=torch.float32, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        seen = 0
        if progress:
            losses[:start] = progress.losses.to(dev)
            correct += progress.correct
            seen = progress.seen
        self.model.train()
        bar = Progress(not self.quiet, self.steps, start, f"epoch {epoch + 1}/{self.recipe.epochs}")
        try:
            done = last_sync = start
            for step, (x, y) in enumerate(self.loader.epoch_batches(epoch, start), start=start):
                loss, out = self._train_step(x, y)
                losses[step] = loss
                hard = y.argmax(1) if y.dim() == 2 else y
                correct += (out.argmax(1) == hard).sum()
                seen += len(y)
                done = step + 1
                if done - last_sync >= self.sync_every or done == self.steps:
                    value = float(loss)
                    if not math.isfinite(value):
                        self._non_finite(epoch, step, value)
                    bar.update(
                        done - last_sync,
                        loss=f"{value:.3f}",
                        acc=f"{100 * int(correct) / max(1, seen):.1f}%",
                        lr=f"{self.sched.get_last_lr()[0]:.3g}",
                    )
                    last_sync = done
                if stop.requested:
                    elapsed = seconds + time.perf_counter() - t0
                    self._interrupt(epoch, done, losses, correct, seen, elapsed)
            train_loss, train_acc, step_losses = self._epoch_totals(epoch, losses, correct, seen)
            result = self._evaluate_epoch(epoch)
            seconds += time.perf_counter() - t0
            self._record(epoch, train_loss, train_acc, result, seconds, step_losses)
            post = {"loss": f"{train_loss:.3f}", "acc": f"{100 * train_acc:.1f}%"}
            single = result.one_pass if result else None
            if single is not None:  # one forward pass, and the TTA figure when there is one
                post[f"{self.eval_split}_acc"] = percent(single.accuracy)
            if result is not None and result is not single:
                post[f"{self.eval_split}_tta_acc"] = percent(result.accuracy)
            bar.close(**post)
        except KeyboardInterrupt:
            bar.close()
            if not stop.requested:
                self._log("interrupted; the last checkpoint is kept" + self._where(" at"))
            raise
        finally:
            bar.close()
        self._check_weights(epoch, self.steps - 1)
        self._save(epoch + 1, 0)
        if stop.requested:
            self._log("interrupted at the end of an epoch; checkpoint saved" + self._where(" to"))
            raise KeyboardInterrupt

    def _where(self, preposition: str) -> str:
        return f"{preposition} {self.ckpt_path}" if self.ckpt_path else ""

    def _epoch_totals(
        self, epoch: int, losses: Tensor, correct: Tensor, seen: int
    ) -> tuple[float, float, list[float]]:
        """Mean loss, accuracy and per-step losses of the epoch (over all ranks); stops on a
        loss that is not finite."""
        dev = self.device
        loss_sum = losses.double().sum()
        sums = torch.stack(
            [loss_sum, correct.double(), torch.tensor(float(seen), device=dev, dtype=torch.float64)]
        )
        if self.env.distributed:
            import torch.distributed as dist

            dist.all_reduce(sums)
            dist.all_reduce(losses)
            losses /= self.env.world_size
            sums[0] /= self.env.world_size
        step_losses = losses.cpu().tolist()
        bad = [i for i, v in enumerate(step_losses) if not math.isfinite(v)]
        if bad:
            self._non_finite(epoch, bad[0], step_losses[bad[0]])
        return (float(sums[0]) / self.steps, float(sums[1]) / max(1.0, float(sums[2])), step_losses)

    def _evaluate_epoch(self, epoch: int) -> EvalResult | None:
        last = epoch + 1 == self.recipe.epochs
        if self.eval_loader is None or not ((epoch + 1) % self.options.eval_every == 0 or last):
            return None
        return evaluate(
            self.ema.module if self.ema is not None else self.model,
            self.eval_loader,
            tta_flip=self.options.tta_flip,
            tta_translate=self.options.tta_translate,
            amp=self.amp,
            device=self.device,
            distributed=self.env.distributed,
            single_pass=True,
        )

    def _record(
        self,
        epoch: int,
        train_loss: float,
        train_acc: float,
        result: EvalResult | None,
        seconds: float,
        step_losses: list[float],
    ) -> None:
        h = self.history
        h.epoch.append(epoch + 1)
        h.train_loss.append(train_loss)
        h.train_acc.append(train_acc)
        single = result.one_pass if result else None  # the curves are one forward pass
        h.eval_loss.append(single.loss if single else None)
        h.eval_acc.append(single.accuracy if single else None)
        h.lr.append(self.recipe.lr * self.schedule(epoch * self.steps))
        h.seconds.append(seconds)
        h.step_loss.extend(step_losses)

    def _check_weights(self, epoch: int, step: int) -> None:
        """Stop (keeping the last checkpoint) if the weights are no longer finite: the last
        step's update can break them after its loss was checked."""
        if not weights_are_finite(self.model):
            self._non_finite(epoch, step, float("nan"), what="weights")

    def _interrupt(
        self, epoch: int, step: int, losses: Tensor, correct: Tensor, seen: int, seconds: float
    ) -> NoReturn:
        # The loss is only synced every few steps on a GPU: a NaN since the last sync must not
        # overwrite the last good checkpoint.
        pending = losses[:step]
        if not bool(torch.isfinite(pending).all()):
            bad = int(torch.nonzero(~torch.isfinite(pending))[0])
            self._non_finite(epoch, bad, float(pending[bad]), interrupted=True)
        self._check_weights(epoch, step - 1)
        self._save(epoch, step, EpochProgress(pending.cpu(), int(correct), seen, seconds))
        self._log(
            f"interrupted at epoch {epoch + 1}, step {step}{self._where('; checkpoint saved to')}"
            "; resume with resume=True (CLI: --resume)"
        )
        raise KeyboardInterrupt

    def _non_finite(
        self, epoch: int, step: int, value: float, *, what: str = "loss", interrupted: bool = False
    ) -> NoReturn:
        lr = float(self.sched.get_last_lr()[0])
        raise NonFiniteLossError(
            non_finite_message(
                epoch, step, value, lr, self.ckpt_path, what=what, interrupted=interrupted
            )
        )
