"""Shared test setup: deterministic torch on few threads (CI has 2 cores)."""

import torch

torch.set_num_threads(2)
