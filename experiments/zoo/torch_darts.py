"""A PyTorch twin of DARTS V2's CIFAR-10 training step, timed like epoch_benchmark.py.

DARTS' own evaluation network (quark0/darts cnn/model.py and operations.py, NetworkCIFAR
with genotype DARTS_V2, C=36, 20 cells, auxiliary head at 2/3) and train.py's step:
cross-entropy + 0.4 * auxiliary cross-entropy, SGD (lr 0.025, momentum 0.9, weight decay
3e-4) on a cosine schedule, clip_grad_norm_(5), drop-path ramped as epoch_benchmark ramps
it. Standalone on purpose (torch and the standard library only, not amla_jax), so it runs
under any Python that has torch. Synthetic device-resident batch; prints one JSON line.

Synopsis::

    python experiments/zoo/torch_darts.py --batch 96 --steps 521 --warmup 5
    python experiments/zoo/torch_darts.py --device cpu --batch 2 --steps 1   # tiny
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time

import torch
from torch import nn

# quark0/darts cnn/genotypes.py: (op, input); 0 = cell k-2, 1 = cell k-1, 2.. = nodes.
DARTS_V2_NORMAL = (
    ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
    ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
    ("sep_conv_3x3", 1), ("skip_connect", 0),
    ("skip_connect", 0), ("dil_conv_3x3", 2),
)  # fmt: skip
DARTS_V2_REDUCE = (
    ("max_pool_3x3", 0), ("max_pool_3x3", 1),
    ("skip_connect", 2), ("max_pool_3x3", 1),
    ("max_pool_3x3", 0), ("skip_connect", 2),
    ("skip_connect", 2), ("max_pool_3x3", 1),
)  # fmt: skip
CONCAT = (2, 3, 4, 5)
# amla_jax's zoo counts for DARTS V2 (README "The table"); the twin must build the same net.
EXPECTED_PARAMS = 3_349_342
EXPECTED_PARAMS_WITH_AUX = 3_825_768


def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> nn.Module:
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(c_out),
    )


def dil_conv(c: int, kernel: int, stride: int, padding: int, dilation: int) -> nn.Module:
    """ReLU, depthwise (dilated) conv, pointwise conv, BN: DARTS' DilConv."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c, c, kernel, stride, padding, dilation=dilation, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c),
    )


def sep_conv(c: int, kernel: int, stride: int, padding: int) -> nn.Module:
    """Two DilConv-shaped blocks without dilation; the stride is in the first only."""
    return nn.Sequential(
        dil_conv(c, kernel, stride, padding, 1), dil_conv(c, kernel, 1, padding, 1)
    )


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs (the second on the input shifted one pixel), concat, BN."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


OPS = {
    "max_pool_3x3": lambda c, s: nn.MaxPool2d(3, stride=s, padding=1),
    "avg_pool_3x3": lambda c, s: nn.AvgPool2d(3, stride=s, padding=1, count_include_pad=False),
    "skip_connect": lambda c, s: nn.Identity() if s == 1 else FactorizedReduce(c, c),
    "sep_conv_3x3": lambda c, s: sep_conv(c, 3, s, 1),
    "sep_conv_5x5": lambda c, s: sep_conv(c, 5, s, 2),
    "dil_conv_3x3": lambda c, s: dil_conv(c, 3, s, 2, 2),
    "dil_conv_5x5": lambda c, s: dil_conv(c, 5, s, 4, 2),
}


def drop_path(x: torch.Tensor, rate: float) -> torch.Tensor:
    """Per-sample Bernoulli(1 - rate) mask, survivors scaled by 1 / (1 - rate)."""
    keep = 1.0 - rate
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    def __init__(self, genotype, c_pp: int, c_p: int, c: int, reduction: bool, after_reduction):
        super().__init__()
        # A cell after a reduction reads k-2 at twice the resolution: FR halves it.
        self.pre0 = FactorizedReduce(c_pp, c) if after_reduction else relu_conv_bn(c_pp, c, 1, 1, 0)
        self.pre1 = relu_conv_bn(c_p, c, 1, 1, 0)
        self.indices = [index for _, index in genotype]
        strides = [2 if reduction and index < 2 else 1 for index in self.indices]
        self.ops = nn.ModuleList(
            OPS[name](c, s) for (name, _), s in zip(genotype, strides, strict=True)
        )

    def forward(self, s0, s1, drop_rate: float):
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(len(self.ops) // 2):
            total = 0
            for j in (2 * node, 2 * node + 1):
                op = self.ops[j]
                h = op(states[self.indices[j]])
                # DARTS drops every op output but a plain identity (FR skips and pools too).
                if self.training and drop_rate > 0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_rate)
                total = total + h
            states.append(total)
        return torch.cat([states[i] for i in CONCAT], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """On the 8x8 output of the second reduction cell: pool 5/3 to 2x2, 1x1, 2x2, linear."""

    def __init__(self, c: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            # DARTS' ReLU here is in place on the cell output the next cells read; they all
            # start with a ReLU, so out of place is the same net without that hazard.
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class NetworkCIFAR(nn.Module):
    def __init__(self, channels=36, num_classes=10, layers=20, genotype=None):
        super().__init__()
        normal, reduce = genotype or (DARTS_V2_NORMAL, DARTS_V2_REDUCE)
        c_curr = 3 * channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr)
        )
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        self.aux_index = 2 * layers // 3
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            c_curr = 2 * c_curr if reduction else c_curr
            cell = Cell(
                reduce if reduction else normal, c_pp, c_p, c_curr, reduction, reduction_prev
            )
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, len(CONCAT) * c_curr
            if i == self.aux_index:
                c_aux = c_p
        self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, num_classes)
        self.classifier = nn.Linear(c_p, num_classes)  # no ReLU before the pool, no dropout

    def forward(self, x, drop_rate: float = 0.0):
        logits_aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, drop_rate)
            if i == self.aux_index and self.training:
                logits_aux = self.auxiliary_head(s1)
        return self.classifier(s1.mean(dim=(2, 3))), logits_aux


def param_counts(model: NetworkCIFAR) -> tuple[int, int]:
    """(without the auxiliary head, with it): the references count the former."""
    total = sum(p.numel() for p in model.parameters())
    return total - sum(p.numel() for p in model.auxiliary_head.parameters()), total


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch", type=int, default=96)
    parser.add_argument("--steps", type=int, default=521, help="50,000 // 96 + 1 = one epoch")
    parser.add_argument("--warmup", type=int, default=0, help="untimed steps after the first")
    parser.add_argument("--epochs", type=int, default=600, help="for the lr and drop-path ramps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels", type=int, default=36)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--json", help="also write the JSON line to this file")
    return parser.parse_args(argv)


def fail(message: str) -> None:
    """A user mistake: one line on stderr, exit 2 (the project's convention)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        fail("--device cuda but torch sees no GPU; use --device cpu or auto")
    return torch.device(name)


def make_step(model, optimizer, scheduler, images, labels, aux_weight=0.4, clip=5.0):
    """DARTS train.py's step (the scheduler steps every step, as optax's schedule counts)."""
    criterion = nn.CrossEntropyLoss()

    def step(drop_rate: float) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        logits, logits_aux = model(images, drop_rate)
        loss = criterion(logits, labels) + aux_weight * criterion(logits_aux, labels)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        scheduler.step()
        return loss.detach()

    return step


def time_steps(step, args: argparse.Namespace, device: torch.device) -> dict:
    """The first step, ``--warmup`` untimed steps, then ``--steps`` timed ones."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    total = args.epochs * args.steps
    sync()
    started = time.perf_counter()
    loss = step(0.0)  # cudnn.benchmark autotunes here: eager's nearest thing to a compile
    sync()
    first_step = time.perf_counter() - started
    # The same drop-path ramp as epoch_benchmark: 0.2 * i / (epochs * steps).
    for i in range(args.warmup):
        loss = step(0.2 * i / total)
    sync()
    times = []
    started = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        loss = step(0.2 * i / total)
        if device.type == "cpu":
            times.append(time.perf_counter())  # CPU steps are synchronous: free per-step times
    sync()
    seconds = time.perf_counter() - started
    steps_ms = [1e3 * (b - a) for a, b in itertools.pairwise([started, *times])]
    return {
        "first_step_s": round(first_step, 2),
        "epoch_s": round(seconds, 2),
        "step_ms": round(1e3 * seconds / args.steps, 2),
        "median_step_ms": round(statistics.median(steps_ms), 2) if steps_ms else None,
        "images_per_s": round(args.steps * args.batch / seconds, 1),
        "final_loss": float(loss),
    }


def measure(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True  # as DARTS' train.py
    model = NetworkCIFAR(args.channels, 10, args.layers).to(device).train()
    params, params_with_aux = param_counts(model)
    optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    total = float(args.epochs * args.steps)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    images = torch.randn(args.batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (args.batch,), device=device)
    step = make_step(model, optimizer, scheduler, images, labels)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed = time_steps(step, args, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "network": "darts_v2",
        "framework": "torch",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32 if device.type == "cuda" else None,
        "params": params,
        "params_with_aux": params_with_aux,
        "batch": args.batch,
        "warmup": args.warmup,
        "steps": args.steps,
        **timed,
        "peak_gib": None if peak is None else round(peak, 3),
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    if min(args.batch, args.steps) < 1 or args.warmup < 0:
        fail("--batch and --steps must be >= 1 and --warmup >= 0")
    record = measure(args)
    line = json.dumps(record)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
