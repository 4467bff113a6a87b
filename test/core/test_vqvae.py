"""The unit-vector VQ-VAE: shapes, quantization, and that fitting it reconstructs the zoo's units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankmap_ros.core import zoo
from rankmap_ros.core.estimator.features import VectorScaler, unit_table
from rankmap_ros.core.estimator.vqvae import ResidualVQ, UnitVQVAE, VQConfig, fit_vqvae
from rankmap_ros.core.unitvec import VECTOR_DIM, vectors


@pytest.fixture(scope="module")
def scaler() -> VectorScaler:
    return VectorScaler.fit(zoo.names())


def test_scaler_standardizes_and_inverts(scaler: VectorScaler) -> None:
    raw = np.concatenate([vectors(m) for m in zoo.names()])
    normalized = scaler.transform(raw)
    assert np.abs(normalized.mean(axis=0)).max() < 1e-4
    assert np.allclose(scaler.inverse(normalized), raw, rtol=1e-3, atol=1e-2)
    assert VectorScaler.from_dict(scaler.to_dict()).transform(raw) == pytest.approx(normalized)
    with pytest.raises(ValueError, match="22"):
        VectorScaler.from_dict({"mean": [0.0] * 3, "std": [1.0] * 3})


def test_encoder_compresses_22_to_16_with_codewords() -> None:
    torch.manual_seed(0)
    vq = UnitVQVAE(VQConfig()).eval()
    x = torch.randn(7, VECTOR_DIM)
    codes = vq.encode(x)
    assert codes.shape == (7, 16)
    recon, loss = vq(x)
    assert recon.shape == x.shape and loss.ndim == 0
    # Each group's code is the sum of one codeword per level, each the nearest to what the
    # levels before it left (chosen here by brute force, not by the quantizer)
    group = vq.quantizers[0]
    with torch.no_grad():
        residual = vq.encoder(x.unsqueeze(1))[:, :8]
        expected = torch.zeros_like(residual)
        for book in group.codebooks:
            distances = ((residual[:, None, :] - book[None, :, :]) ** 2).sum(-1)
            chosen = book[distances.argmin(dim=1)]
            expected, residual = expected + chosen, residual - chosen
    assert torch.allclose(codes[:, :8], expected, atol=1e-5)


def test_restarted_codebooks_quantize_closer_and_each_level_helps() -> None:
    torch.manual_seed(1)
    rvq = ResidualVQ(dim=4, levels=3, size=16)
    z = torch.randn(64, 4)

    def error(quantizer: ResidualVQ) -> float:
        with torch.no_grad():
            quantized, _, _ = quantizer(z)
        return float((quantized - z).square().mean())

    before = error(rvq)
    rvq.restart(z, torch.Generator().manual_seed(0))
    after = error(rvq)
    one_level = ResidualVQ(dim=4, levels=1, size=16)
    with torch.no_grad():
        one_level.codebooks.copy_(rvq.codebooks[:1])
    # codewords left near zero quantize nothing; moved onto the data they do, and more levels more
    assert after < 0.5 * before and after < 0.7 * error(one_level) < 0.7 * before


def test_invalid_grouping_is_rejected() -> None:
    with pytest.raises(ValueError, match="equal groups"):
        UnitVQVAE(VQConfig(latent_dim=15, groups=2))


def test_short_fit_reconstructs_the_zoo_units(scaler: VectorScaler) -> None:
    raw = np.concatenate([vectors(m) for m in zoo.names()])
    vq, report = fit_vqvae(raw, scaler, steps=150, seed=0)
    assert report.mse < 0.05  # normalized units have variance 1
    assert report.rel_error < 0.25
    assert report.codes_used > 16
    table = unit_table(("alexnet", "vgg16"), lambda r: vq.codes(scaler.transform(r)), 32)
    assert table.shape == (2, 32, 16)
    assert np.abs(table[0, :8]).sum(axis=1).min() > 0 and not table[0, 8:].any()
