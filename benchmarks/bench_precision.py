"""Training speed in fp32 and under bf16 autocast: images per second of one SGD step.

Each model trains a few steps on random 32x32 images (channels_last, Nesterov SGD), first in fp32,
then under bf16 autocast; the table gives images/s and the minutes a 50,000-image epoch would
take, with the CPU's name and whether ``amp="auto"`` picks bf16 on it
(:func:`cifarzoo.devices.fast_bf16`). On a CPU the steps keep freed memory for the next one, as
``fit`` does (:func:`cifarzoo.heap.kept_heap`); ``--heap`` instead compares that with the C
library's default, in the precision ``amp="auto"`` picks.

    python benchmarks/bench_precision.py --threads 2 --batch-size 128 \\
        --models resnet18 seresnet18 densenet121
    python benchmarks/bench_precision.py --threads 2 --batch-size 500 --heap
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import cifarzoo
from cifarzoo.devices import autocast, fast_bf16, resolve_device
from cifarzoo.heap import kept_heap
from cifarzoo.runs import hardware_string


def images_per_second(
    name: str, device: torch.device, batch_size: int, amp: bool, steps: int, kept: bool = True
) -> float:
    torch.manual_seed(0)
    model = cifarzoo.create_model(name).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch_size, 3, 32, 32, device=device).contiguous(
        memory_format=torch.channels_last
    )
    y = torch.randint(0, 10, (batch_size,), device=device)

    def step() -> None:
        with autocast(device, amp):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with kept_heap(kept and device.type == "cpu"):
        step()  # warm-up: oneDNN picks its kernels, a kept heap grows to its size
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return steps * batch_size / (time.perf_counter() - t0)


def heap_table(models: list[str], device: torch.device, batch_size: int, steps: int) -> None:
    amp = fast_bf16(device)
    precision = "bf16" if amp else "fp32"
    print(f"| model | {precision} img/s, default malloc | kept heap | speed-up |")
    print("|---|---:|---:|---:|")
    for name in models:
        default, kept = (
            images_per_second(name, device, batch_size, amp, steps, kept=k) for k in (False, True)
        )
        print(f"| {name} | {default:.1f} | {kept:.1f} | {kept / default:.2f}x |", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=["resnet18", "seresnet18", "densenet121"])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed steps per model and precision")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument(
        "--heap", action="store_true", help="compare the kept heap with malloc's default instead"
    )
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"{hardware_string(str(device))}, batch {args.batch_size}; "
        f"amp='auto' picks {'bf16' if fast_bf16(device) else 'fp32'} here"
    )
    if args.heap:
        heap_table(args.models, device, args.batch_size, args.steps)
        return
    print("| model | fp32 img/s | bf16 img/s | bf16 / fp32 | bf16 min per 50k-image epoch |")
    print("|---|---:|---:|---:|---:|")
    for name in args.models:
        fp32, bf16 = (
            images_per_second(name, device, args.batch_size, amp, args.steps)
            for amp in (False, True)
        )
        print(
            f"| {name} | {fp32:.1f} | {bf16:.1f} | {bf16 / fp32:.2f}x | {50_000 / bf16 / 60:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
