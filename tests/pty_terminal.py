"""Run a command in a real pseudo-terminal of a given size and collect what it draws."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time


def run_in_pty(
    command: list[str], columns: int, env: dict | None = None, timeout_s: float = 600
) -> tuple[int, str]:
    """(exit status, everything written to the terminal) of `command` in a `columns`-wide pty."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen(
        command, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(leader, 65536)
            except OSError:  # the other side closed: the command ended
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    return process.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def drawn_lines(output: str) -> list[str]:
    """Each line as drawn: the text between carriage returns and newlines (a pty turns \\n
    into \\r\\n), so a bar redrawn in place gives one entry per drawing."""
    return [part for line in output.split("\n") for part in line.split("\r") if part.strip()]
