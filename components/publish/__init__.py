"""Publish step: registry version + alias, versioned export, model card."""
