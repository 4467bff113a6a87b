"""OmniBoost's estimator, "resnet9_light", as the baseline to beat (research notes §1.3).

A small ResNet over the mapping tensor: a 7×7/2 gate convolution, batch norm, GELU and a 3×3/2
max-pool, four basic-block stages of widths 4, 8, 16, 32 (one block each; stages 2-4 halve the
resolution with a 1×1 projection shortcut), global average pooling and one linear layer with an
output per DNN slot. Xavier-uniform initialisation, no bias in the 3×3 convolutions, GELU, as in
OmniBoost. Here it reads our Q (DNN channels as image channels) and is trained on the same data
and targets as the RankMap estimator, with OmniBoost's L1 loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class BaselineConfig:
    dim: int = 16
    components: int = 3
    max_dnns: int = 5
    max_units: int = 32
    widths: tuple[int, ...] = (4, 8, 16, 32)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["widths"] = list(self.widths)
        return data


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.bn1(self.conv1(x)))
        return F.gelu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNet9Light(nn.Module):
    """Q (B, D, U, components × dim) -> (B, D) normalized log potential throughput per DNN slot."""

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.gate = nn.Sequential(
            nn.Conv2d(config.max_dnns, w[0], 7, 2, 3, bias=False),
            nn.BatchNorm2d(w[0]),
            nn.GELU(),
            nn.MaxPool2d(3, 2, 1),
        )
        stages = [BasicBlock(w[0], w[0], 1)]
        stages += [BasicBlock(w[i - 1], w[i], 2) for i in range(1, len(w))]
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(w[-1], config.max_dnns)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(module.weight)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        d = q.shape[1]
        if d < self.config.max_dnns:  # a cropped Q: the image needs all its channels back
            q = F.pad(q, (0, 0, 0, 0, 0, self.config.max_dnns - d))
        if q.shape[2] < self.config.max_units:
            q = F.pad(q, (0, 0, 0, self.config.max_units - q.shape[2]))
        h = self.stages(self.gate(q))
        return self.head(h.mean(dim=(2, 3)))[:, :d]
