"""Snapshot step: list the inputs (no decoding) -> manifest, fingerprint, diff vs the champion."""
