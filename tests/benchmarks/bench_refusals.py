"""How long `segpipe run/compile/submit/schedule` take to refuse a typo'd setting.

Run: .venv/bin/python tests/benchmarks/bench_refusals.py
Each of the ten typos of tests/settings_typos.py, per command, as a user meets it: a fresh
`segpipe` process (interpreter start and imports included), wall time until it exits. The
target is under a second each. submit and schedule point at a closed port on 127.0.0.1: a
refusal never gets as far as connecting.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from settings_typos import TYPOS  # noqa: E402

SEGPIPE = str(Path(sys.executable).parent / "segpipe")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again once this returns


def main() -> int:
    work = Path(tempfile.mkdtemp())
    host = f"http://127.0.0.1:{closed_port()}"
    cluster = ["--host", host, "--data", "gs://b/d", "--registry", "r.example"]
    commands = {
        "run": ["run", "--workdir", str(work)],
        "compile": ["compile", "-o", str(work / "p.yaml"), "--registry", "r.example"],
        "submit": ["submit", *cluster],
        "schedule": ["schedule", "--cron", "0 3 * * 1", *cluster],
    }
    times: dict[str, list[float]] = {}
    failures = 0
    for typo, message in TYPOS:
        for command, args in commands.items():
            start = time.perf_counter()
            result = subprocess.run(
                [SEGPIPE, *args, "--param", typo], capture_output=True, text=True, timeout=60
            )
            elapsed = time.perf_counter() - start
            times.setdefault(command, []).append(elapsed)
            if result.returncode == 0 or message not in result.stderr:
                failures += 1
                print(f"NOT REFUSED as expected: {command} {typo}: {result.stderr[-300:]}")
    print(f"{'command':<9} {'median s':>9} {'max s':>7}  (10 typos each, fresh process)")
    for command, values in times.items():
        print(f"{command:<9} {statistics.median(values):>9.3f} {max(values):>7.3f}")
    slowest = max(max(values) for values in times.values())
    print(f"slowest refusal: {slowest:.3f} s ({'under' if slowest < 1 else 'OVER'} 1 s)")
    leftovers = list(work.iterdir())
    print(f"files left in the work folder: {len(leftovers)}")
    return 1 if failures or leftovers else 0


if __name__ == "__main__":
    sys.exit(main())
