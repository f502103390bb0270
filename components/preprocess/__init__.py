"""Preprocess step: raw image + mask pairs -> validated, resized, sharded TFRecords."""
