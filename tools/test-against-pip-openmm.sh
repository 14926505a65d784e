#!/usr/bin/env bash
# Builds openmm-enn against pip's OpenMM 8.6.1 (and its CUDA platform) and runs the whole test suite with that
# OpenMM's Python, openmm-ml and mace-torch present (missing ones fail instead of skipping).
#   bash tools/test-against-pip-openmm.sh [build folder, default build-openmm8]
# Needs the Debian packages of the README's two commands, and python3-venv. The virtual environment is
# <build folder>/venv, made by Debian's /usr/bin/python3 (its Debian packages stay visible).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-openmm8}
venv="$build/venv"
mkdir -p "$build"
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install --quiet --no-deps -r tools/pip-openmm8.txt
"$venv/bin/pip" install --quiet -r tools/pip-torch.txt
site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
cmake -S . -B "$build" -DOPENMM_DIR="$site/OpenMM.libs" -DENN_PYTHON="$venv/bin/python" -DSWIG_EXECUTABLE="$venv/bin/swig"
cmake --build "$build" -j2
ENN_REQUIRED_MODULES=openmmml,mace,graph_longrange ctest --test-dir "$build" --output-on-failure -j2
