"""Deterministic, stable hash split."""

from collections import Counter

from components.preprocess.split import assign_split


def test_same_id_same_split():
    assert assign_split("abc", 0.2) == assign_split("abc", 0.2)


def test_fractions_are_respected_roughly():
    counts = Counter(assign_split(f"img_{i}", 0.2, 0.1) for i in range(5000))
    assert abs(counts["val"] / 5000 - 0.2) < 0.03
    assert abs(counts["test"] / 5000 - 0.1) < 0.03


def test_adding_files_never_moves_existing_ones():
    before = {f"img_{i}": assign_split(f"img_{i}", 0.2) for i in range(500)}
    grown = {f"img_{i}": assign_split(f"img_{i}", 0.2) for i in range(1500)}
    assert all(grown[name] == split for name, split in before.items())
