"""Overhead of fit() over a bare hand-written training loop (same model, batches, optimizer).

    python benchmarks/bench_fit_overhead.py [--model resnet20] [--images 2560] [--repeats 3]

Both sides train the same model from the same initial weights on the same DeviceLoader batches
with SGD (Nesterov), a per-step LambdaLR schedule and label-smoothed cross-entropy. fit() adds
its bookkeeping: progress accounting, per-step loss/accuracy on the device, NaN checks,
SIGINT handling, history. EMA and evaluation are off on both sides (they are features, not
overhead). The best of ``--repeats`` alternating runs is compared.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from cifarzoo.data import DeviceLoader
from cifarzoo.models import create_model
from cifarzoo.training import LRSchedule, Recipe, RunOptions, fit
from cifarzoo.training.optimizer import param_groups


def bare_loop(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
) -> None:
    loader = DeviceLoader(images, labels, batch_size=batch_size, train=True, seed=0)
    model.train()
    opt = torch.optim.SGD(param_groups(model, 5e-4), lr=lr, momentum=0.9, nesterov=True)
    steps = len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, LRSchedule("onecycle", min(steps * epochs // 2, 2 * steps), steps * epochs)
    )
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    for epoch in range(epochs):
        for x, y in loader.epoch_batches(epoch):
            loss = crit(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--images", type=int, default=2560)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (args.images,), generator=g)
    torch.manual_seed(0)
    init = create_model(args.model).to(memory_format=torch.channels_last).state_dict()
    steps = args.epochs * (args.images // args.batch_size)
    print(
        f"{args.model}, {steps} steps of batch {args.batch_size} on the CPU, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )

    def run_bare() -> float:
        m = create_model(args.model).to(memory_format=torch.channels_last)
        m.load_state_dict(init)
        t0 = time.perf_counter()
        bare_loop(m, images, labels, args.epochs, args.batch_size, 0.1)
        return time.perf_counter() - t0

    def run_fit() -> float:
        m = create_model(args.model)
        m.load_state_dict(init)
        t0 = time.perf_counter()
        recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=0.1, ema_decay=0.0)
        fit(m, (images, labels), recipe, RunOptions(device="cpu", quiet=True))
        return time.perf_counter() - t0

    run_bare()  # warm-up (allocator, oneDNN kernels)
    bare, fitted = [], []
    for _ in range(args.repeats):
        bare.append(run_bare())
        fitted.append(run_fit())
    b, f = min(bare), min(fitted)
    print(f"bare loop: {b:.2f} s ({steps / b:.1f} steps/s)  runs {[round(x, 2) for x in bare]}")
    print(f"fit():     {f:.2f} s ({steps / f:.1f} steps/s)  runs {[round(x, 2) for x in fitted]}")
    print(f"overhead: {100 * (f / b - 1):+.1f}% (target <= 5%)")


if __name__ == "__main__":
    main()
