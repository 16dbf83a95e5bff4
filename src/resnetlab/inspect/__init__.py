"""Looking inside a network: the layer table with parameter and multiply-add counts, and the
gradient flow per layer."""

from .gradient_flow import GradientFlow, LayerGradient, gradient_flow
from .summary import ModelSummary, SummaryRow, summary

__all__ = ["GradientFlow", "LayerGradient", "ModelSummary", "SummaryRow", "gradient_flow", "summary"]
