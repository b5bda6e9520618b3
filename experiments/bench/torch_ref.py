"""The PyTorch twin of an amla_jax macro network, for `train_step.py`'s baseline row.

Runs in a separate Python environment that has ``torch`` (and numpy) but not amla_jax,
so it reads the network from our spec JSON (``NetworkSpec.to_json()``) and re-implements
exactly the ops of ``amla_jax.nn`` (``layers``, ``macro``, ``model``):

- stem ``conv2d`` (TF SAME padding, bias unless batch-normed, ReLU), ``lrn`` (``tf.nn.lrn``
  defaults), pools, dropout;
- envelope branch: conv (no bias; ``KxKsep`` = depthwise KxK then pointwise 1x1) →
  BatchNorm with an offset and no scale (eps 1e-3, decay 0.99) → ReLU → MeanSSS tap →
  dropout; width ``outputs // branches``; branches concatenated in sorted key order;
- skip inputs: ``concat[x, s_k · maxpool(nets[k]) ...]`` → 1x1 conv + bias → ReLU;
- widener: ``concat[maxpool 2x2/2 SAME, ReLU(conv 3x3/2 SAME + bias)]``, conv width
  starting at the stem width and doubling;
- head: global mean, dropout, ``fc-final``.

The training step is amla_jax's recipe: softmax cross-entropy + ``l2 · Σ p²`` (in the
loss, so it is clipped with the data gradient), per-tensor clip-by-norm, SGD with
Nesterov momentum, and the weight EMA. Eager mode, ``channels_last``. Modules carry
Flax's names, so ``--check`` can load amla_jax's initial weights and compare logits.

Prints one JSON line. Synopsis::

    /path/to/torch/python experiments/bench/torch_ref.py --spec spec.json --batch 64 --steps 10
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF's SAME padding (the extra pixel goes after) for one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_same(x: torch.Tensor, conv: nn.Conv2d, stride: int = 1) -> torch.Tensor:
    """``conv`` (built with padding 0) applied with TF SAME padding."""
    k_h, k_w = conv.kernel_size
    top, bottom = _same_pads(x.shape[2], k_h, stride)
    left, right = _same_pads(x.shape[3], k_w, stride)
    if top == bottom and left == right:
        return F.conv2d(x, conv.weight, conv.bias, stride, (top, left), 1, conv.groups)
    x = F.pad(x, (left, right, top, bottom))
    return F.conv2d(x, conv.weight, conv.bias, stride, 0, 1, conv.groups)


def pool_same(x: torch.Tensor, size: int, stride: int, kind: str = "max") -> torch.Tensor:
    """TF SAME max/avg pooling (padding never wins the max, never counts in the mean)."""
    top, bottom = _same_pads(x.shape[2], size, stride)
    left, right = _same_pads(x.shape[3], size, stride)
    if kind == "max":
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom), value=-math.inf)
        return F.max_pool2d(x, size, stride)
    ones = torch.ones_like(x[:1, :1])
    pads = (left, right, top, bottom)
    total = F.avg_pool2d(F.pad(x, pads), size, stride, divisor_override=1)
    count = F.avg_pool2d(F.pad(ones, pads), size, stride, divisor_override=1)
    return total / count


def lrn(x: torch.Tensor) -> torch.Tensor:
    """``tf.nn.lrn`` with its defaults (depth_radius 4, bias 1, alpha 0.001/9, beta 0.75);
    torch's alpha is divided by the window size, TF's is not."""
    return F.local_response_norm(x, size=9, alpha=0.001, beta=0.75, k=1.0)


def _conv(cin: int, cout: int, kernel: int, bias: bool, groups: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, kernel, padding=0, bias=bias, groups=groups)
    nn.init.xavier_uniform_(conv.weight)  # TF-slim's (and amla_jax's) glorot uniform
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


class OffsetBatchNorm(nn.Module):
    """BatchNorm with a learned offset and no scale (TF-slim's default, as amla_jax)."""

    def __init__(self, channels: int, decay: float, scale: bool = False):
        super().__init__()
        self.decay = decay
        self.scale = nn.Parameter(torch.ones(channels)) if scale else None
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # cuDNN's batch-norm backward needs a weight when it has a bias: a constant one
        # there (not a parameter, made once per device) is the same function.
        scale = self.scale
        if scale is None:
            if getattr(self, "_ones", None) is None or self._ones.device != x.device:
                self._ones = torch.ones_like(self.bias, requires_grad=False)
            scale = self._ones
        return F.batch_norm(
            x, self.mean, self.var, scale, self.bias, self.training, 1.0 - self.decay, 1e-3
        )


class EnvelopeBranch(nn.Module):
    """conv (or depthwise + pointwise) → BN → ReLU → MeanSSS tap → dropout."""

    def __init__(self, op: str, cin: int, features: int, dropout: float):
        super().__init__()
        kernel, _, sep = op.partition("x")
        kernel = int(kernel)
        self.separable = sep.endswith("sep")
        if self.separable:
            self.depthwise = _conv(cin, cin, kernel, bias=False, groups=cin)
            self.pointwise = _conv(cin, features, 1, bias=False)
        else:
            self.conv = _conv(cin, features, kernel, bias=False)
        self.bn = OffsetBatchNorm(features, 0.99)
        self.dropout = dropout
        self.register_buffer("meansss_sum", torch.zeros(()))
        self.register_buffer("meansss_count", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.separable:
            x = self.pointwise(conv_same(x, self.depthwise))
        else:
            x = conv_same(x, self.conv)
        x = F.relu(self.bn(x))
        if self.training:
            with torch.no_grad():
                self.meansss_sum += x.square().mean() * x.shape[0]
                self.meansss_count += 1
        return F.dropout(x, self.dropout, self.training)


class EnvelopeCell(nn.Module):
    """The skip bottleneck (when the layer has ``inputs``) then concatenated branches."""

    def __init__(self, layer: dict, sources: list[int] | None, cin: int, dropout: float):
        super().__init__()
        self.sources = sources
        if sources is not None:
            for src in sources:
                value = 0.5 + 0.01 * torch.randn(())
                self.register_parameter(f"scalar_{src}", nn.Parameter(value))
            self.bottleneck = None  # built lazily: needs the sources' widths
        branches = sorted(layer["filters"].items())
        width = layer["outputs"] // len(branches)
        self.keys = [key for key, _ in branches]
        for key, op in branches:
            self.add_module(key, EnvelopeBranch(op, cin, width, dropout))
        self.out_channels = width * len(branches)

    def build(self, widths: list[int]) -> None:
        if self.sources is not None:
            cin = widths[-1] + sum(widths[src] for src in self.sources)
            self.bottleneck = _conv(cin, widths[-1], 1, bias=True)

    def forward(self, nets: list[torch.Tensor]) -> torch.Tensor:
        x = nets[-1]
        if self.sources is not None:
            parts = [x]
            for src in self.sources:
                y = nets[src]
                while y.shape[2] > x.shape[2]:
                    y = pool_same(y, 2, 2)
                parts.append(getattr(self, f"scalar_{src}") * y)
            x = F.relu(self.bottleneck(torch.cat(parts, 1)))
        return torch.cat([getattr(self, key)(x) for key in self.keys], 1)


class Widener(nn.Conv2d):
    """``concat[maxpool 2x2/2 SAME(x), ReLU(conv 3x3/2 SAME + bias)(x)]``; the module is
    the conv, as Flax's ``Widener{c}`` is."""

    def __init__(self, cin: int, width: int):
        super().__init__(cin, width, 3, padding=0, bias=True)
        nn.init.xavier_uniform_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([pool_same(x, 2, 2), F.relu(conv_same(x, self, 2))], 1)


def _pair(value, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int):
        return value
    if value[0] != value[1]:
        raise NotImplementedError(f"non-square kernel or stride {value}")
    return value[0]


class Network(nn.Module):
    """Stem → macro body → head, from our spec JSON; module names follow Flax's."""

    def __init__(self, spec: dict, num_classes: int, in_channels: int = 3):
        super().__init__()
        if spec["arch"].get("type", "macro") != "macro":
            raise NotImplementedError("the PyTorch twin covers macro bodies only")
        self.stem_layers: list[list[tuple[str, dict]]] = []
        channels, stem_width = in_channels, None
        for i, layer in enumerate(spec["stem"]):
            names, widths = [], []
            for j, block in enumerate(layer):
                name, width = f"stem{i}_{j}", channels
                kind = block["block"]
                if kind == "conv2d":
                    use_bn = bool(block.get("batch_norm", False))
                    width = stem_width = block["outputs"]
                    bias = bool(block.get("use_bias", not use_bn))
                    kernel = _pair(block.get("kernel_size"), 3)
                    self.add_module(name, _conv(channels, width, kernel, bias))
                    if use_bn:
                        decay = block.get("bn_momentum", 0.9)
                        self.add_module(f"{name}_bn", OffsetBatchNorm(width, decay, scale=True))
                elif kind not in ("max_pool", "avg_pool", "lrn", "dropout", "relu"):
                    raise NotImplementedError(f"stem block {kind!r} has no PyTorch twin")
                names.append((name, block))
                widths.append(width)
            self.stem_layers.append(names)
            channels = sum(widths)
        arch = spec["arch"]
        dropout = arch.get("branch_dropout", 0.2)
        self.body = nn.ModuleDict()
        self.layers: list[tuple[str, str | None]] = []  # (kind, module name)
        widths, widener_width = [channels], stem_width
        for index, layer in enumerate(arch["network"]):
            cellnumber = index + 1
            inputs = layer.get("inputs")
            if "filters" in layer:
                sources = None
                if inputs is not None:
                    sources = list(range(cellnumber - 1)) if inputs == "all" else list(inputs)
                cell = EnvelopeCell(layer, sources, widths[-1], dropout)
                cell.build(widths)
                self.body[f"Cell{cellnumber}"] = cell
                widths.append(cell.out_channels)
                self.layers.append(("filters", f"Cell{cellnumber}"))
            elif "widener" in layer:
                self.body[f"Widener{cellnumber}"] = Widener(widths[-1], widener_width)
                widths.append(widths[-1] + widener_width)
                widener_width *= 2
                self.layers.append(("widener", f"Widener{cellnumber}"))
            elif "widener2" in layer:
                raise NotImplementedError("widener2 has no PyTorch twin")
            else:
                widths.append(widths[-1])  # passes its input through, takes a cellnumber
                self.layers.append(("placeholder", None))
        self.head_blocks = spec["head"]
        features = widths[-1]
        for i, block in enumerate(self.head_blocks):
            if block["block"] in ("fc", "fc-final"):
                outputs = block["outputs"] if block["block"] == "fc" else num_classes
                dense = nn.Linear(features, outputs)
                if block["block"] == "fc":
                    nn.init.xavier_uniform_(dense.weight)
                else:
                    fan_in = block.get("inputs") or features
                    nn.init.trunc_normal_(dense.weight, std=1.0 / fan_in)
                nn.init.zeros_(dense.bias)
                self.add_module(f"head{i}", dense)
                features = outputs
            elif block["block"] not in ("reduce_mean", "flatten", "dropout"):
                raise NotImplementedError(f"head block {block['block']!r} has no PyTorch twin")

    def _stem_block(self, name: str, block: dict, x: torch.Tensor) -> torch.Tensor:
        kind = block["block"]
        if kind == "conv2d":
            x = conv_same(x, getattr(self, name), _pair(block.get("stride"), 1))
            if hasattr(self, f"{name}_bn"):
                x = getattr(self, f"{name}_bn")(x)
            return F.relu(x) if block.get("activation", "relu") == "relu" else x
        if kind in ("max_pool", "avg_pool"):
            size, stride = _pair(block.get("kernel_size"), 3), _pair(block.get("stride"), 2)
            return pool_same(x, size, stride, kind[:3])
        if kind == "lrn":
            return lrn(x)
        if kind == "dropout":
            return F.dropout(x, 1.0 - block.get("keep_prob", 0.8), self.training)
        return F.relu(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.stem_layers:
            outs = [self._stem_block(name, block, x) for name, block in layer]
            x = outs[0] if len(outs) == 1 else torch.cat(outs, 1)
        nets = [x]
        for kind, name in self.layers:
            if kind == "filters":
                x = self.body[name](nets)
            elif kind == "widener":
                x = self.body[name](x)
            nets.append(x)
        for i, block in enumerate(self.head_blocks):
            kind = block["block"]
            if kind == "reduce_mean":
                x = x.mean(dim=(2, 3))
            elif kind == "flatten" or (x.ndim > 2 and kind in ("fc", "fc-final")):
                x = x.flatten(1) if x.ndim == 2 else x.permute(0, 2, 3, 1).flatten(1)
            if kind == "dropout":
                x = F.dropout(x, 1.0 - block.get("keep_prob", 0.8), self.training)
            elif kind in ("fc", "fc-final"):
                x = getattr(self, f"head{i}")(x)
                x = F.relu(x) if kind == "fc" else x
        return x


def load_flax_weights(model: Network, path: str) -> None:
    """Copies amla_jax's variables (an npz keyed ``params/a/b/kernel`` and
    ``batch_stats/a/b/mean``) into ``model``; fails on any name or shape mismatch."""
    arrays = dict(np.load(path))
    targets = {}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if "meansss" in name:
            continue
        parts = name.replace("body.", "body/", 1).replace(".", "/").split("/")
        leaf = parts[-1]
        collection = "batch_stats" if leaf in ("mean", "var") else "params"
        leaf = {"weight": "kernel", "scale": "scale"}.get(leaf, leaf)
        targets["/".join([collection, *parts[:-1], leaf])] = tensor
    missing = sorted(set(arrays) ^ set(targets))
    if missing:
        raise SystemExit(f"torch_ref: weights do not match the network by name: {missing[:8]}")
    with torch.no_grad():
        for key, tensor in targets.items():
            value = torch.from_numpy(arrays[key])
            if value.ndim == 4:  # HWIO (and depthwise HW1C) -> OIHW
                value = value.permute(3, 2, 0, 1)
            elif value.ndim == 2:  # (in, out) -> (out, in)
                value = value.T
            if tuple(value.shape) != tuple(tensor.shape):
                raise SystemExit(f"torch_ref: {key}: shape {value.shape} vs {tensor.shape}")
            tensor.copy_(value)


def clip_per_tensor_(grads: list[torch.Tensor], max_norm: float) -> None:
    """Scales each gradient so that its L2 norm is at most ``max_norm`` (AMLA's clip)."""
    norms = torch._foreach_norm(grads)
    scales = [torch.clamp(max_norm / torch.clamp(n, min=1e-12), max=1.0) for n in norms]
    torch._foreach_mul_(grads, scales)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="our spec JSON (NetworkSpec.to_json)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.04)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--l2", type=float, default=3e-4)
    parser.add_argument("--clip", type=float, default=5.0)
    parser.add_argument("--ema-decay", type=float, default=0.9999)
    parser.add_argument("--check", help="npz from train_step.py: initial weights + logits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda (auto: cuda if present)")
    args = parser.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    # cuDNN picks its fastest algorithm per shape in the first steps (what DARTS' and
    # most PyTorch training scripts turn on); the warm-up steps absorb that search.
    torch.backends.cudnn.benchmark = device.type == "cuda"

    torch.manual_seed(args.seed)
    with open(args.spec) as f:
        spec = json.load(f)
    model = Network(spec, args.num_classes)
    num_params = sum(p.numel() for p in model.parameters())
    result = {"num_params": num_params, "torch": torch.__version__}
    result["threads"] = torch.get_num_threads()

    if args.check:
        load_flax_weights(model, args.check)
        data = np.load(args.check.replace(".npz", "_io.npz"))
        model.eval()
        with torch.no_grad():
            x = torch.from_numpy(data["image"]).permute(0, 3, 1, 2)
            logits = model(x.contiguous(memory_format=torch.channels_last)).numpy()
        scale = float(np.abs(data["logits"]).max())
        result["check_max_abs_diff"] = float(np.abs(logits - data["logits"]).max())
        result["check_logits_scale"] = scale

    model = model.to(device, memory_format=torch.channels_last).train()
    params = list(model.parameters())
    ema = [p.detach().clone() for p in params]
    optimizer = torch.optim.SGD(
        params, lr=args.lr, momentum=args.momentum, nesterov=True, foreach=True
    )
    size = args.image_size
    images = torch.randn(args.batch, 3, size, size, device=device)
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, args.num_classes, (args.batch,), device=device)

    def step(t: int) -> float:
        optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        loss = loss + args.l2 * sum(p.square().sum() for p in params)
        loss.backward()
        clip_per_tensor_([p.grad for p in params], args.clip)
        optimizer.step()
        decay = min(args.ema_decay, (1.0 + t) / (10.0 + t))
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1.0 - decay)
        return loss.detach().item()

    times = []
    for t in range(args.warmup + args.steps):
        started = time.perf_counter()
        loss = step(t)
        times.append(time.perf_counter() - started)
        if t == 0:
            result["first_step_s"] = times[0]
    if not math.isfinite(loss):
        raise SystemExit(f"torch_ref: loss is {loss}")
    measured = times[args.warmup :]
    result.update(
        step_s_median=statistics.median(measured),
        step_s_min=min(measured),
        step_s_max=max(measured),
        steps=len(measured),
        final_loss=loss,
        channels_last=images.is_contiguous(memory_format=torch.channels_last),
    )
    result["images_per_s"] = args.batch / result["step_s_median"]
    result["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    if device.type == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
