"""VQ-VAE that compresses a unit's 22-dim vector into a 16-dim code (paper Section IV.C).

1D convolutions read the (normalized) vector as a one-channel sequence; the 16-dim latent is
quantized by grouped residual vector quantization: the latent is split into groups, and each
group is approximated by a sum of codewords, one from each of several codebooks, each codebook
quantizing what the previous ones left over. The estimator reads the quantized latent.

Codebooks start from encoder outputs and codewords nobody picks are moved onto a random
residual every few hundred steps; without that, most of a randomly initialised codebook dies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rankmap_ros.core.estimator.features import VectorScaler


@dataclass(frozen=True)
class VQConfig:
    in_dim: int = 22
    latent_dim: int = 16
    groups: int = 2
    levels: int = 4
    codebook_size: int = 64
    hidden: int = 32
    commitment: float = 0.25

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class VQReport:
    """Reconstruction error on the unit vectors it was fitted to."""

    mse: float  # in the scaler's normalized space (log1p, standardized)
    rel_error: float  # mean |x' - x| / max(|x|, 1) on the raw vector entries
    codes_used: int  # distinct codewords in use over all codebooks
    steps: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


class ResidualVQ(nn.Module):
    """Residual quantization of one group: `levels` codebooks, each coding the remaining error."""

    def __init__(self, dim: int, levels: int, size: int) -> None:
        super().__init__()
        self.codebooks = nn.Parameter(torch.randn(levels, size, dim) * 0.1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(quantized, codebook+commitment terms, code indices (B, levels))."""
        residual = z
        quantized = torch.zeros_like(z)
        codebook_loss = z.new_zeros(())
        commit_loss = z.new_zeros(())
        indices = []
        for book in self.codebooks:
            idx = torch.cdist(residual.detach(), book.detach()).argmin(dim=1)
            chosen = book[idx]
            codebook_loss = codebook_loss + F.mse_loss(chosen, residual.detach())
            commit_loss = commit_loss + F.mse_loss(residual, chosen.detach())
            quantized = quantized + chosen
            residual = residual - chosen.detach()
            indices.append(idx)
        # Straight-through: the decoder's gradient reaches the encoder unchanged.
        out = z + (quantized - z).detach()
        return out, torch.stack([codebook_loss, commit_loss]), torch.stack(indices, dim=1)

    @torch.no_grad()
    def restart(self, z: torch.Tensor, generator: torch.Generator) -> None:
        """Move codewords that no input picks onto residuals the codebook leaves at that level."""
        residual = z
        for book in self.codebooks:
            idx = torch.cdist(residual, book).argmin(dim=1)
            dead = torch.ones(len(book), dtype=torch.bool)
            dead[idx] = False
            if dead.any():
                pick = torch.randint(len(residual), (int(dead.sum()),), generator=generator)
                book[dead] = residual[pick] + 1e-3 * torch.randn(len(pick), book.shape[1], generator=generator)
            residual = residual - book[torch.cdist(residual, book).argmin(dim=1)]


class UnitVQVAE(nn.Module):
    """Encoder (1D conv) -> grouped residual VQ -> decoder (1D conv)."""

    def __init__(self, config: VQConfig | None = None) -> None:
        super().__init__()
        self.config = config or VQConfig()
        c = self.config
        if c.latent_dim % c.groups:
            raise ValueError(f"latent_dim {c.latent_dim} must split into {c.groups} equal groups")
        self.encoder = nn.Sequential(
            nn.Conv1d(1, c.hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(c.hidden, c.hidden, 3, padding=1),
            nn.GELU(),
            nn.Flatten(1),
            nn.Linear(c.hidden * c.in_dim, c.latent_dim),
        )
        self.quantizers = nn.ModuleList(
            ResidualVQ(c.latent_dim // c.groups, c.levels, c.codebook_size) for _ in range(c.groups)
        )
        self.decoder_in = nn.Linear(c.latent_dim, c.hidden * c.in_dim)
        self.decoder = nn.Sequential(
            nn.GELU(),
            nn.Conv1d(c.hidden, c.hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(c.hidden, 1, 3, padding=1),
        )

    def groups(self, z: torch.Tensor) -> list[tuple[torch.Tensor, ResidualVQ]]:
        """Each group of the latent with its quantizer."""
        quantizers = [q for q in self.quantizers if isinstance(q, ResidualVQ)]
        return list(zip(z.chunk(self.config.groups, dim=1), quantizers, strict=True))

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts, losses = [], []
        for group, quantizer in self.groups(z):
            q, loss, _ = quantizer(group)
            parts.append(q)
            losses.append(loss)
        return torch.cat(parts, dim=1), torch.stack(losses).sum(dim=0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized (B, 22) vectors -> quantized (B, 16) codes."""
        return self.quantize(self.encoder(x.unsqueeze(1)))[0]

    @torch.no_grad()
    def codes(self, normalized: np.ndarray) -> np.ndarray:
        """Quantized codes of normalized (N, 22) vectors as a float32 array (for unit tables)."""
        return self.encode(torch.as_tensor(normalized, dtype=torch.float32)).numpy()

    def decode(self, q: torch.Tensor) -> torch.Tensor:
        h = self.decoder_in(q).view(-1, self.config.hidden, self.config.in_dim)
        return self.decoder(h).squeeze(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, loss) where loss = reconstruction + codebook + β·commitment."""
        q, (codebook, commit) = self.quantize(self.encoder(x.unsqueeze(1)))
        recon = self.decode(q)
        loss = F.mse_loss(recon, x) + codebook + self.config.commitment * commit
        return recon, loss

    @torch.no_grad()
    def restart_dead_codes(self, x: torch.Tensor, generator: torch.Generator) -> None:
        for group, quantizer in self.groups(self.encoder(x.unsqueeze(1))):
            quantizer.restart(group, generator)

    @torch.no_grad()
    def codes_used(self, x: torch.Tensor) -> int:
        used = 0
        for group, quantizer in self.groups(self.encoder(x.unsqueeze(1))):
            indices = quantizer(group)[2]
            used += sum(len(torch.unique(indices[:, level])) for level in range(indices.shape[1]))
        return used


def fit_vqvae(
    raw: np.ndarray,
    scaler: VectorScaler,
    config: VQConfig | None = None,
    steps: int = 1500,
    seed: int = 0,
    restart_every: int = 200,
    on_step: Callable[[int, int, float], None] | None = None,
) -> tuple[UnitVQVAE, VQReport]:
    """Fit on raw (N, 22) unit vectors, all in one batch: the zoo has a few hundred units.

    `on_step(step, steps, loss)` reports progress (half a minute of steps on a small CPU).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = UnitVQVAE(config)
    x = torch.as_tensor(scaler.transform(raw))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    model.train()
    for step in range(steps):
        if step % restart_every == 0 and step < steps * 3 // 4:
            model.restart_dead_codes(x, generator)
        _, loss = model(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if on_step is not None:
            on_step(step, steps, float(loss.detach()))
    model.eval()
    with torch.no_grad():
        recon = model.decode(model.encode(x))
    rel = np.abs(scaler.inverse(recon.numpy()) - raw) / np.maximum(np.abs(raw), 1.0)
    return model, VQReport(
        mse=float(F.mse_loss(recon, x)), rel_error=float(rel.mean()), codes_used=model.codes_used(x), steps=steps
    )
