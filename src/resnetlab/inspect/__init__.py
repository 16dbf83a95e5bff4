"""Looking inside a network: the layer table with parameter and multiply-add counts."""

from .summary import ModelSummary, SummaryRow, summary

__all__ = ["ModelSummary", "SummaryRow", "summary"]
