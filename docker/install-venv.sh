#!/bin/sh
# Create the image's venv and install the wheelhouse into it, offline: the lock's exact versions
# (requirements.txt) and segpipe's wheel, then check them. Runs inside `docker build`, from the
# wheelhouse that `make wheelhouse` filled (docker/wheelhouse.py copies this script there).
# Usage: install-venv.sh VENV 'import a, b' [venv options, e.g. --system-site-packages]
set -eu
venv=$1
imports=$2
shift 2
wheelhouse=$(dirname "$0")
python3 -c "import sys; assert sys.version_info[:2] == (3, 11), \
'the wheelhouse holds CPython 3.11 wheels; this base has Python ' + sys.version"
python3 -m venv --without-pip "$@" "$venv"
# pip from the wheelhouse too: some bases lack ensurepip, and Beam's boot calls `python -m pip`.
pip_wheel=$(ls "$wheelhouse"/pip-*.whl)
"$venv/bin/python" "$pip_wheel/pip" install --quiet --no-index "$pip_wheel"
"$venv/bin/pip" install --quiet --no-index --find-links "$wheelhouse" --no-deps \
    -r "$wheelhouse/requirements.txt" "$wheelhouse"/segpipe-*.whl
"$venv/bin/pip" check
"$venv/bin/python" -c "$imports"
