#!/bin/sh
# The image's install, as compose/Dockerfile's build stage runs it (and tests/ops, in a copy of
# the build context): AgentTrace into a virtualenv at PREFIX, with the per-event modules compiled
# by mypyc as `make up` compiles them (ops/stack/native.py; a failed build leaves them Python).
#
#   compose/install.sh PREFIX
#
# Compiles in the source tree, so run it on a copy (the image's /src), not on a working tree.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${1:?usage: compose/install.sh PREFIX}
PYTHON=${PYTHON:-python3}

pip_install() {  # VENV ARGS...: pinned as `make up` pins them
  venv=$1
  shift
  "$venv/bin/pip" install --disable-pip-version-check -q -c "$SRC/ops/stack/constraints.txt" "$@"
}

# mypyc type-checks what it compiles, so the compiler runs beside the dependencies, in a venv of
# its own: mypy and setuptools stay out of the image.
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
"$PYTHON" -m venv "$BUILD/venv"
pip_install "$BUILD/venv" "$SRC" mypy mypy_extensions setuptools
"$BUILD/venv/bin/pip" uninstall -q -y agenttrace  # its dependencies stay; the sources are $SRC's
"$BUILD/venv/bin/python" "$SRC/ops/stack/native.py"

"$PYTHON" -m venv "$PREFIX"
pip_install "$PREFIX" "$SRC"
# pip dates each installed file as it writes it; an extension dated before its source would be
# dropped as stale (pipeline/compiled.py), and the image's user could not even remove it.
SITE=$("$PREFIX/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
find "$SITE/pipeline" "$SITE/sinks" "$SITE/ingest" -name '*.so' -exec touch {} +
"$PREFIX/bin/python" -c '
from pipeline.compiled import active
print("install: the per-event modules run", "compiled" if active() else "as Python")
'
