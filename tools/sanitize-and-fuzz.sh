#!/usr/bin/env bash
# The sanitizer and fuzzing leg of CI (docs/reliability.md). Usage:
#   bash tools/sanitize-and-fuzz.sh SANITIZE_BUILD NORMAL_BUILD [FUZZ_SECONDS_EACH]
# Builds the project with clang, AddressSanitizer (LeakSanitizer on) and UndefinedBehaviorSanitizer, and the
# libFuzzer harnesses of tests/fuzz; runs a subset of the C++ tests under the sanitizers; then runs each fuzzer
# for FUZZ_SECONDS_EACH (default 30) seconds from seeds made with NORMAL_BUILD's Python module (an ordinary
# build of this tree: its openmmenn module writes the test models and the XML seeds). Any sanitizer report,
# test failure or fuzzer finding fails the script; a fuzzer's crashing input is left in SANITIZE_BUILD/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
san=$(realpath -m "$1")
normal=$(realpath "$2")
seconds=${3:-30}
CC=clang CXX=clang++ cmake -S . -B "$san" -DCMAKE_BUILD_TYPE=Release -DENN_SANITIZE=ON -DENN_BUILD_FUZZERS=ON -DENN_BUILD_PYTHON=OFF
tests="TestBadInput TestSerialization TestFixtures TestGradients TestCpuPlatform TestConcurrency"
cmake --build "$san" -j2 --target $tests FuzzModelLoader FuzzXmlDeserializer
export PYTHONPATH="$normal/python"
# That build's plugins, not any installed ones (an older install's plugins would load an older libOpenMMENN first).
export OPENMM_PLUGIN_DIR="$normal/test-plugins"
/usr/bin/python3 tests/make_test_models.py "$san/tests/models" tests/data
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tools/lsan-suppressions.txt:print_suppressions=0
for t in $tests; do
  echo "== $t under ASan+UBSan+LSan"
  start=$SECONDS
  "$san/tests/$t" --gtest_brief=1
  echo "== $t: clean, $((SECONDS - start)) s"
done

# Seeds: tiny models and ENNForce XML with every coupling the proxy writes (tools/write-fuzz-seeds.py), the
# shipped model, and one larger test model.
corpus="$san/fuzz"
rm -rf "$corpus"
mkdir -p "$corpus/findings"
/usr/bin/python3 tools/write-fuzz-seeds.py "$corpus"
cp models/*.enn "$san/tests/models/three_layer_tanh.enn" "$corpus/models/"
largest=$(stat -c %s "$corpus"/models/*.enn | sort -n | tail -n 1)
flags=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$corpus/findings/")
echo "== FuzzModelLoader, $seconds s"
"$san/tests/fuzz/FuzzModelLoader" "${flags[@]}" -max_len="$largest" "$corpus/models"
echo "== FuzzXmlDeserializer, $seconds s"
"$san/tests/fuzz/FuzzXmlDeserializer" "${flags[@]}" -max_len=$((4 * largest / 3 + 4096)) "$corpus/xml"
