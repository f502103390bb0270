"""Evaluate step: streaming confusion matrix, IoU metrics, champion comparison, gate."""
