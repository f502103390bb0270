"""Progress bars in a real terminal: redrawn in place, never wider than the terminal."""

from __future__ import annotations

import sys

import pytest
from pty_terminal import drawn_lines, run_in_pty

from components.common.progress import Bar

DRAW = """
import time
from components.common.progress import Bar
bar = Bar(__import__("sys").stdout, 40, "epochs")
prefix = " " * 8 + "  train       "
for epoch in range(1, 41):
    bar.update(epoch, f"val mean IoU 0.{epoch:04d}, {epoch}m{epoch:02d}s", prefix=prefix)
bar.clear()
print("done")
"""


@pytest.mark.parametrize("columns", [80, 120, 50])
def test_a_bar_is_redrawn_in_place_within_the_terminal_s_width(columns):
    status, output = run_in_pty([sys.executable, "-c", DRAW], columns)
    assert status == 0, output
    drawn = drawn_lines(output)
    bars = [line for line in drawn if "epochs" in line]
    assert len(bars) == 40  # one drawing per update
    assert max(len(line.rstrip()) for line in drawn) < columns
    assert output.count("\n") == 1  # only "done" ends a line: the bar never scrolled
    assert bars[-1].lstrip().startswith("train") and "40/40 epochs" in bars[-1]
    if columns >= 120:
        assert bars[-1].rstrip().endswith("val mean IoU 0.0040, 40m40s")  # nothing cut


def test_a_narrow_line_keeps_the_counts_and_shortens_the_bar_then_the_note():
    bar = Bar(None, 40, "epochs")
    prefix = " " * 10 + "train       "
    full = bar.line(12, "val mean IoU 0.6245, 16m54s", prefix)
    assert len(full) == 90 and "[#######.................]" in full
    fitted = bar.line(12, "val mean IoU 0.6245, 16m54s", prefix, limit=79)
    assert len(fitted) <= 79 and "12/40 epochs, val mean IoU 0.6245, 16m54s" in fitted
    short = bar.line(12, "val mean IoU 0.6245, 16m54s", prefix, limit=50)
    assert len(short) == 50 and short.endswith("...") and "[##......]" in short
