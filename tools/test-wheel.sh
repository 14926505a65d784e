#!/usr/bin/env bash
# The pip route as a user takes it (docs/install.md): builds the wheel from this clone, installs it into a fresh
# virtual environment that holds only openmm 8.6.1 (and numpy), runs there what a user runs, and checks that the
# install wrote nothing outside the environment and that `pip uninstall` leaves nothing of ours behind. Then the same
# for the CUDA plugin's wheel (wrappers/cuda-wheel) beside openmm-cuda-12: it loads and registers its kernel with
# OpenMM's CUDA platform (tests/cuda_plugin_check.py; without a GPU, through the CUDA toolkit's stub driver).
#   bash tools/test-wheel.sh [folder, default build-wheel] [ctest build of OpenMM 8.6.1, default build-openmm8]
#                            [Debian build, default build]
# The second folder is tools/test-against-pip-openmm.sh's build: the wheel's energies are compared with its. The
# third, the README's Debian build, runs part of its suite while the wheel is installed (the two share no file).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build-wheel}
ctest_build=${2:-build-openmm8}
debian_build=${3:-build}
root=$(pwd)
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
python=${ENN_WHEEL_PYTHON:-python3} # the pyenv Python 3.11 on PATH, not Debian's (whose packages stay out of the venv)

start=$(date +%s)
"$python" -m venv "$work/build-venv"
"$work/build-venv/bin/pip" wheel --quiet . -w "$work/dist" --no-deps
wheel=$(ls "$work"/dist/openmm_enn-*.whl)
echo "wheel: $(basename "$wheel"), $(du -k "$wheel" | cut -f1) KiB, built in $(($(date +%s) - start)) s"
start=$(date +%s)
"$work/build-venv/bin/pip" wheel --quiet wrappers/cuda-wheel -w "$work/dist" --no-deps
cuda_wheel=$(ls "$work"/dist/openmm_enn_cuda_12-*.whl)
echo "CUDA wheel: $(basename "$cuda_wheel"), $(du -k "$cuda_wheel" | cut -f1) KiB, built in $(($(date +%s) - start)) s"

"$python" -m venv "$work/venv"
venv="$work/venv"
stamp="$work/stamp"
list_venv() { (cd "$venv" && find . -print | grep -v __pycache__ | sort) > "$1"; }
# The install writes nothing outside the environment: no file newer than the stamp in the system's folders or the
# user's (caches aside).
check_nothing_outside() {
  local outside
  outside=$(find /usr /etc /opt "$HOME" -xdev -newer "$stamp" -type f 2>/dev/null | grep -v -e "^$HOME/.cache/" -e "^$work/" || true)
  if [ -n "$outside" ]; then
    echo "FAILED: the install wrote outside its environment:"; echo "$outside"; exit 1
  fi
  echo "the install wrote nothing outside $venv"
}
"$venv/bin/pip" install --quiet "openmm==8.6.1" numpy
"$venv/bin/pip" install --quiet --no-deps "openmmml==1.8"
list_venv "$work/before.txt"
touch "$stamp"
sleep 1
"$venv/bin/pip" install --quiet --no-deps "$wheel"
check_nothing_outside

# What a user runs, from another folder (so that nothing is imported from the clone):
cd "$work"
unset OPENMM_PLUGIN_DIR PYTHONPATH
"$venv/bin/python" -c "import openmmenn, openmm; print('openmmenn', openmmenn.__file__, 'with OpenMM', openmm.__version__)"
"$venv/bin/python" "$root/tests/wheel_check.py" evaluate "$work/wheel.json" "$root/tests/data/mace/public_A"
"$venv/bin/python" -m openmmenn.mace "$root/tests/data/mace/public_B" "$work/public_B.enn"
"$venv/bin/python" "$root/tests/wheel_check.py" openmm-ml
"$venv/bin/python" "$root/examples/md_small_molecule.py" --steps 200
OPENMM_PLUGIN_DIR="$root/$ctest_build/test-plugins" PYTHONPATH="$root/$ctest_build/python" \
  "$root/$ctest_build/venv/bin/python" "$root/tests/wheel_check.py" evaluate "$work/ctest.json" "$root/tests/data/mace/public_A"
"$venv/bin/python" "$root/tests/wheel_check.py" compare "$work/wheel.json" "$work/ctest.json"
if [ -d "$root/$debian_build" ]; then # Debian's OpenMM 7.7 build, with the wheel installed
  ctest --test-dir "$root/$debian_build" -R 'Fixtures|plugins_load_alone|example_md_small_molecule|c_example' --output-on-failure
fi

# Bad input, at configure time: an openmm outside the wheel's range (a stand-in package that says 8.5.2), and a SWIG whose
# runtime cannot share pip OpenMM's type tables (Debian's 4.1 against pip's 4.5), each an error naming the problem.
mkdir -p "$work/old-openmm/openmm"
echo "short_version = '8.5.2'" > "$work/old-openmm/openmm/version.py"
touch "$work/old-openmm/openmm/__init__.py"
expect_configure_error() { # expected message, then cmake arguments
  local expected=$1
  shift
  if cmake -S "$root" -B "$work/bad-configure" "$@" > "$work/bad-configure.log" 2>&1; then
    echo "FAILED: configured where it should have refused ($*)"; exit 1
  fi
  if ! tr '\n' ' ' < "$work/bad-configure.log" | tr -s ' ' | grep -q "$expected"; then
    echo "FAILED: the error does not say '$expected':"; cat "$work/bad-configure.log"; exit 1
  fi
  echo "refused as expected: $expected"
  rm -rf "$work/bad-configure"
}
PYTHONPATH="$work/old-openmm" expect_configure_error "the openmm package found is 8.5.2" -DSKBUILD=ON -DPython_EXECUTABLE="$venv/bin/python"
if [ -x /usr/bin/swig ]; then
  expect_configure_error "has runtime version 4, but the openmm module" -DOPENMM_DIR="$("$venv/bin/python" -c "import openmm, os; print(os.path.join(os.path.dirname(openmm.__file__), '..', 'OpenMM.libs'))")" \
    -DENN_PYTHON="$venv/bin/python" -DSWIG_EXECUTABLE=/usr/bin/swig -DENN_BUILD_TESTS=OFF
fi

# Uninstall: the environment as it was before, nothing of ours left.
uninstall_check() {
  "$venv/bin/pip" uninstall --quiet --yes "$@"
  list_venv "$work/after.txt"
  if ! diff "$work/before.txt" "$work/after.txt"; then
    echo "FAILED: pip uninstall left the files above"; exit 1
  fi
  left=$(find "$venv" \( -iname '*openmmenn*' -o -iname 'openmm_enn*' \) | head)
  if [ -n "$left" ]; then
    echo "FAILED: pip uninstall left:"; echo "$left"; exit 1
  fi
  echo "pip uninstall $* removed everything of ours"
}
uninstall_check openmm-enn

# The CUDA wheel beside OpenMM's CUDA platform and the CUDA libraries its plugin needs (tools/pip-openmm8.txt's pins).
grep -E '^(openmm-cuda-12|nvidia-)' "$root/tools/pip-openmm8.txt" > "$work/cuda-requirements.txt"
"$venv/bin/pip" install --quiet --no-deps -r "$work/cuda-requirements.txt"
list_venv "$work/before.txt"
touch "$stamp"
sleep 1
"$venv/bin/pip" install --quiet --no-deps "$wheel" "$cuda_wheel"
check_nothing_outside
cuda_env=()
if ! ldconfig -p | grep -q 'libcuda\.so\.1 '; then # no NVIDIA driver: the toolkit's stub, so that OpenMM's CUDA plugin loads
  mkdir -p "$work/stub"
  ln -sf "$(ls /usr/local/cuda/lib64/stubs/libcuda.so /usr/local/cuda/targets/*/lib/stubs/libcuda.so 2>/dev/null | head -1)" "$work/stub/libcuda.so.1"
  cuda_env=(LD_LIBRARY_PATH="$work/stub" ENN_CUDA_STUB=1)
fi
site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_path('platlib'))")
env "${cuda_env[@]}" "$venv/bin/python" "$root/tests/cuda_plugin_check.py" "$site/OpenMM.libs/lib/plugins/libOpenMMENNCUDA.so" \
  "$site/openmmenn/models/hcno-xtb-small.enn"
uninstall_check openmm-enn-cuda-12 openmm-enn
