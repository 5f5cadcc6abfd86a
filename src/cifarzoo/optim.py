"""The optimizer's pieces under the module name they were first documented with: they live in
:mod:`cifarzoo.training.optimizer`, with the optimizer and schedule a recipe asks for."""

from __future__ import annotations

from .training.optimizer import MuonSGD, muon_param_groups, orthogonalize, param_groups

__all__ = ["MuonSGD", "muon_param_groups", "orthogonalize", "param_groups"]
