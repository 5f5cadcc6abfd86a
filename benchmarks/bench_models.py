"""Forward+backward step time of cifarzoo models against reference implementations.

References: torchvision's resnet18/densenet121 with a CIFAR stem (3x3 stride-1 conv, no max-pool),
and for the small models the same architecture written plainly (as in the lab code and in
akamaster/pytorch_resnet_cifar10). Runs are interleaved in one process and the median of several
repeats is reported, so both sides see the same machine state.

    python benchmarks/bench_models.py [--repeats 7] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

import cifarzoo


class PlainLeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class PlainBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PlainResNet20(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks: list[nn.Module] = []
        cin = 16
        for i, cout in enumerate((16, 32, 64)):
            for j in range(3):
                blocks.append(PlainBlock(cin, cout, 2 if i > 0 and j == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(64, 10)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def torchvision_resnet18() -> nn.Module:
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


def torchvision_densenet121() -> nn.Module:
    model = torchvision.models.densenet121(num_classes=10)
    model.features.conv0 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.features.pool0 = nn.Identity()
    return model


# name: (cifarzoo factory, reference factory, reference label, batch size)
CASES: dict[str, tuple[Callable[[], nn.Module], Callable[[], nn.Module], str, int]] = {
    "lenet": (cifarzoo.lenet, PlainLeNet, "plain LeNet", 256),
    "resnet20": (cifarzoo.resnet20, PlainResNet20, "plain ResNet-20", 128),
    "resnet18": (cifarzoo.resnet18, torchvision_resnet18, "torchvision resnet18", 32),
    "densenet121": (cifarzoo.densenet121, torchvision_densenet121, "torchvision densenet121", 32),
}


def make_step(
    model: nn.Module, batch: int, device: torch.device, channels_last: bool
) -> Callable[[], None]:
    model.to(device).train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    x = torch.randn(batch, 3, 32, 32, device=device).to(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    return step


def timed(step: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=list(CASES))
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    results = []
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(
        f"{'model':<12} {'reference':<24} {'ref ms':>8} {'ours ms':>8} {'ours CL ms':>10} "
        f"{'speedup':>8}"
    )
    for name in args.models:
        ours_factory, ref_factory, ref_label, batch = CASES[name]
        steps = {
            "reference": make_step(ref_factory(), batch, device, channels_last=False),
            "ours": make_step(ours_factory(), batch, device, channels_last=False),
            "ours_channels_last": make_step(ours_factory(), batch, device, channels_last=True),
        }
        times: dict[str, list[float]] = {key: [] for key in steps}
        for step in steps.values():  # warm-up
            step()
        for _ in range(args.repeats):
            for key, step in steps.items():
                times[key].append(timed(step, device))
        median = {key: statistics.median(values) * 1000 for key, values in times.items()}
        best_ours = min(median["ours"], median["ours_channels_last"])
        speedup = median["reference"] / best_ours
        print(
            f"{name:<12} {ref_label:<24} {median['reference']:>8.1f} {median['ours']:>8.1f} "
            f"{median['ours_channels_last']:>10.1f} {speedup:>7.2f}x"
        )
        results.append({"model": name, "reference": ref_label, "batch": batch, **median})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"device": str(device), "torch": torch.__version__, "results": results}, f, indent=2
            )


if __name__ == "__main__":
    main()
