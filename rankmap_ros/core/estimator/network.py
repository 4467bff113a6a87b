"""The multi-task attention CNN that predicts every DNN's throughput from Q (paper Section IV.D).

Q is (DNN channel, unit row, component blocks × vector dim). Each unit row becomes a feature
vector of `width` numbers, a fixed fraction of the row width (components × dim), so the cost
grows with the unit-vector width as in the paper's CNN, where Q's column axis runs through the
layers; that is what the VQ-VAE's 22 -> 16 compression saves.

Backbone: residual blocks shared by all DNN channels (the paper has three; two are as accurate
here at two thirds of the cost, docs/ESTIMATOR.md), each
  (i)   two depth-wise convolutions along the units of each DNN (one filter per feature, kernel
        1 × k on the (DNN, unit) grid: DNN channels are independent and never mixed here, the
        paper's reason for depth-wise convolutions), then self-attention among the units of
        each DNN (linear attention: its cost grows linearly with the units);
  (ii)  stage sums: the unit features are log-scale (the unit vectors are log1p'd) and a
        pipeline stage's time is the sum of its units' times, so learned log-cost channels are
        log-sum-exp'ed over each stage (a run of units on one component) and over the DNN;
  (iii) a point-wise convolution with batch norm that mixes features and adds a context from
        the other DNNs: attention among the DNN channels, each summarized by its summed unit
        features and stage costs, plus the sum over all of them (contention for components).
Every operation treats DNN channels alike, so permuting Q's channels permutes the backbone's
output the same way.
Decoders: one stream per DNN slot (multi-task): linear-attention pooling over the DNN's units,
log-cost channels summed over the DNN and over its slowest stage, then two fully connected
layers to one number, the normalized log potential throughput.

Features are laid out token-major, (real DNNs of the batch, unit, feature): empty DNN slots are
never computed (`Packing`), point-wise layers are single matrix products (1-D convolutions in
the other layout ran 6x slower on CPU), and the depth-wise convolutions are three shifted
multiply-adds. Padding units are masked wherever tokens mix: cropping Q to the workload's DNNs
and deepest model gives the same predictions at a fraction of the cost.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class NetConfig:
    dim: int = 16
    components: int = 3
    max_dnns: int = 5
    max_units: int = 32
    width_fraction: float = 2 / 3
    blocks: int = 2
    heads: int = 2
    key_dim: int = 8
    cost_channels: int = 16
    kernel: int = 3
    decoder_heads: int = 2
    decoder_multiplier: float = 2.0

    @property
    def row_width(self) -> int:
        return self.components * self.dim

    @property
    def width(self) -> int:
        width = round(self.width_fraction * self.row_width)
        return width - width % self.heads

    @property
    def decoder_hidden(self) -> int:
        return round(self.decoder_multiplier * self.width)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Packing:
    """Where the real DNNs of a batch are: the backbone only computes those.

    Workloads hold 1-5 DNNs, so a dense (batch, 5 slots) layout wastes about 40% of the work on
    empty slots; `index` lists the real (sample, slot) pairs as flat indices into batch × slots.
    """

    batch: int
    slots: int
    index: torch.Tensor
    present: torch.Tensor  # (batch, slots) bool

    @classmethod
    def of(cls, present: torch.Tensor) -> Packing:
        return cls(present.shape[0], present.shape[1], present.reshape(-1).nonzero().squeeze(1), present)

    @property
    def slot(self) -> torch.Tensor:
        return self.index % self.slots

    def scatter(self, packed: torch.Tensor) -> torch.Tensor:
        """(N, ...) per real DNN -> (batch, slots, ...) with zeros in empty slots."""
        dense = packed.new_zeros((self.batch * self.slots, *packed.shape[1:]))
        return dense.index_copy(0, self.index, packed).view(self.batch, self.slots, *packed.shape[1:])

    def gather(self, dense: torch.Tensor) -> torch.Tensor:
        """(batch, slots, ...) -> (N, ...) for the real DNNs."""
        return dense.reshape(self.batch * self.slots, *dense.shape[2:]).index_select(0, self.index)


LOG_COST_RANGE = 30.0
TINY = 1e-30


def row_mask(q: torch.Tensor) -> torch.Tensor:
    """(B, D, U) True where Q holds a unit: a real unit vector is never all zeros."""
    return q.abs().amax(dim=-1) > 0


def stage_ids(components: torch.Tensor) -> torch.Tensor:
    """(..., U) component per unit -> (..., U) index of its pipeline stage (a run of one component)."""
    change = torch.zeros_like(components)
    change[..., 1:] = (components[..., 1:] != components[..., :-1]).to(components.dtype)
    return change.cumsum(dim=-1)


def stage_costs(a: torch.Tensor, stages: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-sum-exp of (N, U, channels) log-costs per stage and per DNN.

    With `a` a unit's log-time on its component, exp(a) summed over a stage is the stage's time
    (what a pipeline's rate is the minimum of) and over the DNN its total work. Returns (log of
    each unit's stage sum (N, U, channels), log of the DNN's sum (N, channels)); padding units
    contribute nothing, and an empty DNN gets a large negative number. Log-costs are clamped to
    [-LOG_COST_RANGE, LOG_COST_RANGE] so exp stays finite in float32 without a max subtraction.
    """
    e = torch.exp(a.clamp(-LOG_COST_RANGE, LOG_COST_RANGE)) * m
    index = stages.unsqueeze(-1).expand_as(a)
    per_stage = torch.zeros_like(a).scatter_add_(1, index, e).gather(1, index)
    return torch.log(per_stage + TINY), torch.log(e.sum(dim=1) + TINY)


class DepthwiseConv(nn.Module):
    """Depth-wise convolution along the units (one kernel per feature), token-major, zero padding."""

    def __init__(self, width: int, kernel: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(kernel, width) / math.sqrt(kernel))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, u = self.weight.shape[0], x.shape[1]
        padded = F.pad(x, (0, 0, k // 2, k - 1 - k // 2))
        out = torch.addcmul(self.bias, padded[:, 0:u], self.weight[0])
        for j in range(1, k):
            out = torch.addcmul(out, padded[:, j : j + u], self.weight[j])
        return out

    def extra_macs(self, x: torch.Tensor) -> int:
        return x.numel() * self.weight.shape[0]


class UnitAttention(nn.Module):
    """Linear self-attention (Katharopoulos et al.) among the units of each DNN, masked.

    Every unit queries its DNN's units with phi(q)·phi(k), phi = exp (clamped); key-value sums
    are formed once per DNN, so the cost is linear in the units. Values are the features
    themselves (the output projection mixes them). One head: every product is then a plain
    batched matrix product on the token-major layout, without copies.
    """

    def __init__(self, width: int, key_dim: int) -> None:
        super().__init__()
        self.key_dim = key_dim
        self.qk = nn.Linear(width, 2 * key_dim)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        qk = torch.exp(self.qk(x).clamp(max=10.0))
        q, k = qk[..., : self.key_dim], qk[..., self.key_dim :] * m
        num = torch.bmm(q, torch.bmm(k.transpose(1, 2), x))
        den = torch.bmm(q, k.sum(dim=1).unsqueeze(-1))
        return self.out(num / den.clamp_min(1e-6))

    def extra_macs(self, x: torch.Tensor) -> int:
        """Key-value sums, their readout and the normalizer (the linear layers count themselves)."""
        n, u, w = x.shape
        return n * u * (2 * self.key_dim * w + 2 * self.key_dim)


class MaskedBatchNorm(nn.BatchNorm1d):
    """Batch norm over (tokens, features) whose training statistics come from real units only."""

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not self.training:
            return super().forward(x.reshape(-1, x.shape[-1])).view_as(x)
        count = m.sum().clamp_min(1)
        mean = (x * m).sum(dim=(0, 1)) / count
        var = ((x - mean).square() * m).sum(dim=(0, 1)) / count
        if self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum or 0.1)
                self.running_var.lerp_(var * count / (count - 1).clamp_min(1), self.momentum or 0.1)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class DnnAttention(nn.Module):
    """Softmax self-attention among the DNNs of the workload, each summarized by one vector.

    This is how one DNN learns what the others put on the components it shares with them; it
    treats DNN channels as a set (masked for empty slots), so channel order does not matter.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, summary: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        b, d, w = summary.shape
        q, k, v = self.qkv(summary).view(b, d, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        bias = torch.zeros(b, 1, 1, d, dtype=summary.dtype).masked_fill(~present[:, None, None, :], -1e4)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.out(h.transpose(1, 2).reshape(b, d, w))

    def extra_macs(self, summary: torch.Tensor) -> int:
        b, d, w = summary.shape
        return 2 * b * d * d * w


class Block(nn.Module):
    """Depth-wise convs, self-attention and stage sums per DNN; point-wise conv + batch norm with cross-DNN context."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        w, c = config.width, config.cost_channels
        self.dw1 = DepthwiseConv(w, config.kernel)
        self.dw2 = DepthwiseConv(w, config.kernel)
        self.attention = UnitAttention(w, config.key_dim)
        self.cost = nn.Linear(w, c)
        self.stage_out = nn.Linear(c, w)
        self.cost_out = nn.Linear(c, w)
        self.dnns = DnnAttention(w, config.heads)
        self.load = nn.Linear(w, w, bias=False)
        self.pointwise = nn.Linear(w, w)
        self.bn = MaskedBatchNorm(w)
        self.scale = 1.0 / config.max_units

    def forward(self, x: torch.Tensor, m: torch.Tensor, stages: torch.Tensor, packing: Packing) -> torch.Tensor:
        """x (N real DNNs, U, width). Padding tokens may hold anything: every token-mixing operation masks them."""
        x = x + self.dw2(F.silu(self.dw1(x * m)) * m)
        x = x + self.attention(x, m)
        stage_cost, dnn_cost = stage_costs(self.cost(x), stages, m)
        x = x + self.stage_out(stage_cost)
        summary = packing.scatter((x * m).sum(dim=1) * self.scale + self.cost_out(dnn_cost))
        # Attention weights sum to one, so attention cannot count: the workload's total is added.
        context = summary + self.dnns(summary, packing.present) + self.load(summary.sum(dim=1))[:, None, :]
        h = self.pointwise(x) + packing.gather(context).unsqueeze(1)
        return x + F.silu(self.bn(h, m))


class LinearAttentionDecoders(nn.Module):
    """One decoder per DNN slot: pooling over its units, then two FC layers.

    Pooling is linear attention (Katharopoulos et al.) with one learned query per head, a unit
    weighing phi(query)·phi(key), phi = exp (clamped), normalized over the DNN's units; plus log-cost
    channels summed over the DNN and over its slowest stage. Weights are per slot, stacked on a
    leading slot axis.
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        d, w, h, c = config.max_dnns, config.width, config.decoder_hidden, config.cost_channels
        self.heads, self.key_dim = config.decoder_heads, config.key_dim
        self.key = nn.Parameter(torch.randn(d, w, self.heads * self.key_dim) / math.sqrt(w))
        self.query = nn.Parameter(torch.randn(d, self.heads, self.key_dim))
        self.cost = nn.Parameter(torch.randn(d, w, c) / math.sqrt(w))
        self.fc1 = nn.Parameter(torch.randn(d, w + 2 * c, h) / math.sqrt(w + 2 * c))
        self.fc1_bias = nn.Parameter(torch.zeros(d, h))
        self.fc2 = nn.Parameter(torch.randn(d, h) / math.sqrt(h))
        self.fc2_bias = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor, m: torch.Tensor, stages: torch.Tensor, packing: Packing) -> torch.Tensor:
        """x (N real DNNs, U, width), mask (N, U, 1), stage ids (N, U) -> (batch, slots), 0 in empty slots."""
        n, u, w = x.shape
        slot = packing.slot
        keys = torch.exp(torch.bmm(x, self.key[slot]).clamp(max=10.0)).view(n, u, self.heads, -1)
        score = (keys * torch.exp(self.query[slot].clamp(max=10.0)).unsqueeze(1)).sum(dim=-1) * m
        weight = score / score.sum(dim=1, keepdim=True).clamp_min(1e-6)
        pooled = (weight.unsqueeze(-1) * x.view(n, u, self.heads, -1)).sum(dim=1).reshape(n, w)
        per_stage, whole = stage_costs(torch.bmm(x, self.cost[slot]), stages, m)
        slowest = (per_stage - (1 - m) * 2 * LOG_COST_RANGE).amax(dim=1)
        features = torch.cat([pooled, whole, slowest], dim=-1)
        # Every slot's first layer on every DNN, then each DNN's own slot: cheaper than gathering weights.
        hidden = torch.einsum("nf,dfh->ndh", features, self.fc1) + self.fc1_bias
        hidden = F.gelu(hidden[torch.arange(n), slot])
        return packing.scatter((hidden * self.fc2[slot]).sum(dim=-1) + self.fc2_bias[slot])

    def extra_macs(self, x: torch.Tensor) -> int:
        n, u, w = x.shape
        keys, costs, hidden = self.key.shape[2], self.cost.shape[2], self.fc1.shape[-1]
        slots = self.fc1.shape[0]
        return n * (u * w * (keys + costs) + u * keys + u * w + slots * (w + 2 * costs) * hidden + hidden)


class RankMapNet(nn.Module):
    """Q (B, D, U, components × dim) -> (B, D) normalized log potential throughput per DNN slot."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Linear(config.row_width, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.blocks))
        self.decoders = LinearAttentionDecoders(config)

    def components(self, q: torch.Tensor) -> torch.Tensor:
        """(B, D, U) index of the component block that holds each unit's vector."""
        c = self.config
        return q.view(*q.shape[:3], c.components, c.dim).abs().sum(dim=-1).argmax(dim=-1)

    def features(self, q: torch.Tensor) -> torch.Tensor:
        """The backbone's output (B, D, U, width), zeros in empty slots: permuting Q's channels permutes it alike."""
        mask = row_mask(q)
        packing = Packing.of(mask.any(dim=2))
        x = self.backbone(
            packing.gather(self.stem(q)), packing.gather(mask), packing.gather(self.components(q)), packing
        )
        return packing.scatter(x)

    def backbone(self, x: torch.Tensor, mask: torch.Tensor, components: torch.Tensor, packing: Packing) -> torch.Tensor:
        """Stem output (N real DNNs, U, width), unit mask and components (N, U) -> features (N, U, width)."""
        m = mask.unsqueeze(-1).to(x.dtype)
        stages = stage_ids(components)
        for block in self.blocks:
            x = block(x, m, stages, packing)
        return x

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        mask = row_mask(q)
        packing = Packing.of(mask.any(dim=2))
        mask, components = packing.gather(mask), packing.gather(self.components(q))
        x = self.backbone(packing.gather(self.stem(q)), mask, components, packing)
        return self.decoders(x, mask.unsqueeze(-1).to(x.dtype), stage_ids(components), packing)

    def stem_table(self, table: torch.Tensor) -> torch.Tensor:
        """The stem's output for every (model, unit, component): (M, U, components, width).

        A Q row holds one unit vector in one component's block and zeros elsewhere, so the stem
        (a linear layer) of that row is its block's slice of the weights times the vector. With
        this table, `forward_indexed` skips building Q: same result, far less memory traffic.
        """
        c = self.config
        weight = self.stem.weight.view(c.width, c.components, c.dim)
        return torch.einsum("mud,wcd->mucw", table, weight) + self.stem.bias

    def forward_indexed(self, stems: torch.Tensor, models: torch.Tensor, assign: torch.Tensor) -> torch.Tensor:
        """(B, D) predictions from a stem table, model ids (B, D) and component indices (B, D, U), -1 padding."""
        packing = Packing.of(models >= 0)
        assign = packing.gather(assign)
        mask, components = assign >= 0, assign.clamp(min=0)
        x = stems[packing.gather(models).unsqueeze(1), torch.arange(assign.shape[-1]), components]
        x = self.backbone(x, mask, components, packing)
        return self.decoders(x, mask.unsqueeze(-1).to(x.dtype), stage_ids(components), packing)
