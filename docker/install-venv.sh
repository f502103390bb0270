#!/bin/sh
# Create the image's venv and install the lock's exact versions (requirements.txt) into it from
# this wheelhouse, offline. Runs inside `docker build`, in the folder `make wheelhouse` filled
# (docker/wheelhouse.py copies this script there). segpipe's own wheel is installed later, in its
# own layer, so a code change does not reinstall the dependencies.
# Usage: install-venv.sh VENV [venv options, e.g. --system-site-packages]
set -eu
venv=$1
shift
wheelhouse=$(dirname "$0")
python3 -c "import sys; assert sys.version_info[:2] == (3, 11), \
'the wheelhouse holds CPython 3.11 wheels; this base has Python ' + sys.version"
python3 -m venv --without-pip "$@" "$venv"
# pip from the wheelhouse too: some bases lack ensurepip, and Beam's boot calls `python -m pip`.
pip_wheel=$(ls "$wheelhouse"/pip-*.whl)
"$venv/bin/python" "$pip_wheel/pip" install --quiet --no-index "$pip_wheel"
"$venv/bin/pip" install --quiet --no-index --find-links "$wheelhouse" --no-deps \
    -r "$wheelhouse/requirements.txt"
