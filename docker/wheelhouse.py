"""Fill one image's wheelhouse on the host: the lock's exact wheels for the image's Python and
platform, plus segpipe's own wheel, so `docker build` installs with no network.

Usage: python docker/wheelhouse.py LOCK WHEELHOUSE   (`make wheelhouse`)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "docker" / "install-venv.sh"  # what the Dockerfiles run on the wheelhouse
# What the images run: CPython 3.11 on x86_64 Linux with glibc >= 2.28 (Debian bookworm has 2.36,
# Ubuntu 22.04 2.35). pip does not widen a --platform to older manylinux tags itself, so list them.
PYTHON_VERSION = "3.11"
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]
# Published as source only: built here into pure-Python wheels (checked below). A lock refresh that
# brings another one fails the binary download naming it ("No matching distribution"): add it here.
SOURCE_ONLY = {"google-apitools", "kfp-server-api"}
PACKAGE_FILES = ("pyproject.toml", "README.md", "components", "pipelines")
PYCACHE = shutil.ignore_patterns("__pycache__", "*.pyc")
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def lock_entries(lock: Path) -> list[tuple[str, str, str]]:
    """(name, version, entry text with its --hash lines) for each pinned requirement of `lock`."""
    entries = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text()):
        match = REQUIREMENT.match(block)
        if match:
            entries.append((match.group(1).lower(), match.group(2).rstrip("\\ "), block.strip()))
    if not entries:
        raise SystemExit(f"{lock}: no pinned requirements (name==version) found")
    return entries


def _pip(*args: str | Path) -> None:
    command = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check", *args]
    command = [str(part) for part in command]
    subprocess.run(command, check=True)


def _write_lock(path: Path, entries: list[str]) -> Path:
    path.write_text("\n".join(entries) + "\n")
    return path


def download_binaries(lock: Path, out: Path) -> None:
    """The lock's wheels for the images' Python and platform, checked against the lock's hashes."""
    target = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    for platform in PLATFORMS:
        target += ["--platform", platform]
    _pip("download", "--no-deps", "--require-hashes", *target, "-r", lock, "-d", out)


def build_from_source(lock: Path, out: Path, tmp: Path) -> None:
    """The lock's source-only packages, hash-checked, built into wheels."""
    sdists = tmp / "sdists"
    _pip("download", "--no-deps", "--require-hashes", "--no-binary=:all:", "-r", lock, "-d", sdists)
    _pip("wheel", "--no-deps", "--wheel-dir", out, *sorted(sdists.iterdir()))


def build_segpipe(out: Path, tmp: Path) -> None:
    """segpipe's wheel, from a clean copy of its sources (an in-tree build reuses build/lib)."""
    tree = tmp / "segpipe"
    tree.mkdir()
    for name in PACKAGE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, tree / name, ignore=PYCACHE)
        else:
            shutil.copy2(ROOT / name, tree / name)
    _pip("wheel", "--no-deps", "--wheel-dir", out, tree)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def prune(out: Path, entries: list[tuple[str, str, str]]) -> set[tuple[str, str]]:
    """Remove wheels the lock no longer holds; returns the (name, version) pairs still there,
    which were hash-checked when they came, so a refill fetches only what the lock changed."""
    locked = {(_normalized(name), version) for name, version, _ in entries}
    kept = set()
    for wheel in out.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if (_normalized(name), version) in locked:
            kept.add((_normalized(name), version))
        else:
            wheel.unlink()
    return kept


def fill(lock: Path, wheelhouse: Path) -> None:
    """Bring `wheelhouse` to: deps/ the wheels of `lock`, requirements.txt (its pins) and the
    install script; segpipe/ segpipe's wheel (the images install it in a layer of its own)."""
    entries = lock_entries(lock)
    out, own = wheelhouse / "deps", wheelhouse / "segpipe"
    out.mkdir(parents=True, exist_ok=True)
    present = prune(out, entries)
    missing = [
        (name, text)
        for name, version, text in entries
        if (_normalized(name), version) not in present
    ]
    shutil.rmtree(own, ignore_errors=True)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if binary := [text for package, text in missing if package not in SOURCE_ONLY]:
            download_binaries(_write_lock(tmp / "binary.txt", binary), out)
        if source := [text for package, text in missing if package in SOURCE_ONLY]:
            build_from_source(_write_lock(tmp / "source.txt", source), out, tmp)
        build_segpipe(own, tmp)
    host_only = [w.name for w in out.glob("*-linux_x86_64.whl")]
    if host_only:
        raise SystemExit(f"wheels built for this host only, not portable to the image: {host_only}")
    shutil.copy2(INSTALLER, out / INSTALLER.name)
    pins = "".join(f"{package}=={version}\n" for package, version, _ in entries)
    header = f"# the exact versions of {lock.name} (their hashes were checked at download)\n"
    (out / "requirements.txt").write_text(header + pins)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    fill(Path(argv[0]), Path(argv[1]))
    print(f"filled {argv[1]} from {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
