"""Building blocks shared by the zoo's architectures.

Activations are modules (never `torch.nn.functional` calls) so that unit vectors can see them.
"""

from __future__ import annotations

from torch import nn


def conv_bn_act(
    cin: int,
    cout: int,
    kernel: int | tuple[int, int],
    stride: int = 1,
    padding: int | tuple[int, int] | None = None,
    groups: int = 1,
    act: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """Convolution without bias, batch norm, then an activation (or none)."""
    if padding is None:
        padding = (kernel - 1) // 2 if isinstance(kernel, int) else (kernel[0] // 2, kernel[1] // 2)
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6, nn.SiLU) else act())
    return nn.Sequential(*layers)


def conv_act(
    cin: int,
    cout: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    act: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """Convolution with bias then an activation (pre-batch-norm era networks)."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding), act(inplace=True))


def classifier(cin: int, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """Global average pooling and a linear layer: the usual classification head unit."""
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(cin, num_classes))
    return nn.Sequential(*layers)
