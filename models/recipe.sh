#!/usr/bin/env bash
# Rebuilds models/hcno-xtb-small.enn from nothing but Debian's xtb, python3-ase and python3-torch:
# GFN2-xTB data for small H/C/N/O molecules and water clusters, then training. Deterministic given
# the seeds (xtb is deterministic); a few minutes of xtb and about 25 of training on 2 cores. The model's
# energy includes the Gaussian-damped (sigma 1 Angstrom) Coulomb energy of its predicted charges.
# Usage: PYTHONPATH=build/python bash models/recipe.sh [work folder]
set -euo pipefail
work=${1:-model-build}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work" && cd "$work"
MOLS="H2O CH3OH CH3CH2OH HCOOH CH3COOH CH3CONH2 NH3 CH4 CH3CHO CH3CN C6H6 C5H5N H2CO CH3OCH3"
py=/usr/bin/python3
$py -m openmmenn.xtb --molecules $MOLS --water-clusters 2 3 4 6 --samples 30 --sampling displace --sigma 0.08 --seed 1 --out displace.extxyz
$py -m openmmenn.xtb --molecules $MOLS --water-clusters 2 3 4 6 --samples 20 --sampling md --temperature 500 --seed 2 --out md.extxyz
ALA="$here/structures/alanine_dipeptide.xyz"
$py -m openmmenn.xtb --structures "$ALA" --samples 30 --sigma 0.08 --seed 31 --out ala_displace.extxyz
$py -m openmmenn.xtb --structures "$ALA" --samples 20 --sampling md --temperature 500 --seed 32 --out ala_md.extxyz
cat displace.extxyz md.extxyz ala_displace.extxyz ala_md.extxyz > all.extxyz
$py -m openmmenn.train --data all.extxyz --out hcno-xtb-small.enn --checkpoint hcno.pt --metrics metrics.jsonl \
    --coulomb gaussian --gaussian-sigma 1.0 --channels 16 --hidden "16x0e+16x1o" "16x0e" --correlation 2 --lmax 2 --radial-hidden 32 32 --readout-hidden 16 \
    --epochs 120 --patience 25 --lr-patience 5 --batch-size 16 --lr 1e-2 --valid-fraction 0.1 --dtype float32 --threads 2 --seed 0
# Held-out test data (new seeds) and the errors reported in models/README.md.
$py -m openmmenn.xtb --molecules $MOLS --water-clusters 2 3 4 6 --samples 5 --sampling displace --sigma 0.08 --seed 11 --out test_displace.extxyz
$py -m openmmenn.xtb --molecules $MOLS --water-clusters 2 3 4 6 --samples 5 --sampling md --temperature 500 --seed 12 --out test_md.extxyz
$py -m openmmenn.xtb --structures "$ALA" --samples 10 --sigma 0.08 --seed 21 --out test_ala_displace.extxyz
$py -m openmmenn.xtb --structures "$ALA" --samples 10 --sampling md --temperature 500 --seed 22 --out test_ala_md.extxyz
cat test_displace.extxyz test_md.extxyz > test.extxyz
cat test_ala_displace.extxyz test_ala_md.extxyz > test_ala.extxyz
$py -m openmmenn.train --data test.extxyz --evaluate hcno-xtb-small.enn
$py -m openmmenn.train --data test_ala.extxyz --evaluate hcno-xtb-small.enn
echo "built $work/hcno-xtb-small.enn (the shipped copy is $here/hcno-xtb-small.enn)"
