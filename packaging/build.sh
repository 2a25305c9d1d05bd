#!/usr/bin/env bash
# `make package`: builds the one-folder app dist/medview/ with PyInstaller from packaging/medview.spec,
# smoke-tests it (--version, self-test offscreen) and prints its size and how long the build took.
# Env: PYTHON (default .venv/bin/python), MEDVIEW_GPU_BUILD=1 for the CUDA variant (keeps CUDA libraries),
# MEDVIEW_SKIP_SMOKE=1 to skip the smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
    echo "build.sh: PyInstaller is missing: run 'make package' or '$PY -m pip install -e .[package]'" >&2
    exit 2
fi
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --log-level WARN \
    --workpath build/pyinstaller --distpath dist packaging/medview.spec
built=$(date +%s)
echo "build.sh: built dist/medview in $((built - start)) s"

if [[ "${MEDVIEW_SKIP_SMOKE:-0}" != "1" ]]; then
    # the frozen app writes only under MEDVIEW_HOME: give it a throw-away one
    home=$(mktemp -d)
    trap 'rm -rf "$home"' EXIT
    QT_QPA_PLATFORM=offscreen MEDVIEW_HOME="$home" dist/medview/medview --version
    QT_QPA_PLATFORM=offscreen MEDVIEW_HOME="$home" dist/medview/medview self-test
fi

bytes=$(du -sb dist/medview | cut -f1)
echo "build.sh: dist/medview is $((bytes / 1024 / 1024)) MiB ($bytes bytes, $(find dist/medview -type f | wc -l) files)"
echo "build.sh: record it with: $PY packaging/size.py --record   (packaging/size.json)"
