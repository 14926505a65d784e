"""Write the model files the C++ tests use into a folder (run by ctest before the tests).

The MACE fixtures (tests/data/mace) are converted; random models built with
openmmenn.builder cover the options the fixtures do not (charge head, unnatural parities,
SO(3) symmetry, linear readouts, tanh, other units, three layers).
"""
import os
import sys

from openmmenn import builder, mace, modelfile

out, fixtures = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
for name in ("public_A", "public_B"):
    folder = os.path.join(fixtures, "mace", name)
    target = os.path.join(out, name + ".enn")
    if not os.path.isdir(folder):
        sys.exit("MACE reference data %s not found (tests/data/README.md)" % folder)
    mace.convert_fixture(folder, target)

models = {
    # Charge head, hidden irreps of both parities, non-residual then residual layers.
    "mixed_charge": dict(channels=4, hidden=("4x0e+4x0o+4x1o+4x1e+4x2e", "4x0e"), residual=(False, True),
                         message_parities="both", message_lmax=2, charge_head=True, seed=1),
    # The same network with and without parity selection rules, for the mirror-image test.
    "chiral_so3": dict(channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(True, True), symmetry="SO3", seed=2),
    "chiral_o3": dict(channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(True, True), symmetry="O3", seed=2),
    # Three layers, correlation 2, linear readouts, tanh, l_max 2, kJ/mol and nm.
    "three_layer_tanh": dict(channels=4, hidden=("4x0e+4x1o+4x2e", "4x0e+4x1o", "4x0e"), residual=(True, False, True),
                             correlation=2, sh_lmax=2, message_lmax=2, readout_hidden=0, activation="tanh",
                             units=("kJ/mol", "nm"), r_max=0.45, seed=3, charge_head=True, weight_std=0.5,
                             energy_scale=200.0),
    # Charges frozen to per-element values (H, C, N, O), to compare with OpenMM's own forces: the model's
    # energy without a Coulomb term of its own (ML-ML pairs excluded), and with one of point charges.
    "frozen_charges": dict(channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(False, True), charge_head=True,
                           frozen_charges=True, charge_offsets=[0.21, -0.13, -0.47, -0.52], seed=4),
    "frozen_charges_coulomb": dict(channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(False, True), charge_head=True,
                                   frozen_charges=True, charge_offsets=[0.21, -0.13, -0.47, -0.52], seed=4, coulomb=True),
    # Geometry-dependent charges with per-element offsets; the energy includes their Gaussian-damped Coulomb term.
    "damped_charge": dict(channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(False, True), charge_head=True,
                          charge_offsets=[0.2, -0.1, -0.4, -0.5], coulomb=True, gaussian_sigma=0.6, seed=5),
    # Wider than the CPU linears' 32-column register tile (40 channels: a whole tile and a remainder), l_max 3.
    "wide_charge": dict(channels=40, hidden=("40x0e+40x1o", "40x0e"), residual=(False, True), sh_lmax=3, message_lmax=3,
                        charge_head=True, seed=7),
    # MACE's materials blocks: density-normalised layers (non-residual, then residual), the Agnesi distance transform
    # and ZBL pair repulsion (format version 3); r_max 5 A.
    "materials": dict(channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(False, True), density_normalization=True,
                      distance_transform="agnesi", pair_repulsion=True, r_max=5.0, seed=8),
    # Classic blocks with ZBL and MACE's Soft distance transform.
    "materials_soft": dict(channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(False, True), distance_transform="soft",
                           pair_repulsion=True, r_max=5.0, seed=9),
    # MACE's non-linear block family (OMOL-0, MH-1): non-linear blocks, apply_cutoff false, the charge and spin
    # embedding (format version 4), with Agnesi and ZBL as MH-1 has them; r_max 5 A.
    "nonlinear": dict(channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(True, True), nonlinear=True, apply_cutoff=False,
                      joint_embedding=True, distance_transform="agnesi", pair_repulsion=True, r_max=5.0, seed=10),
    # MACELES's latent charges (format version 5): a charge readout of every layer, summed and unconstrained, their
    # Gaussian Coulomb term (sigma 1 A, without self energies) with MACE-LES-OFF's constant (les's norm_factor 90.0474 / 2 pi)
    # and, in periodic cells, the les library's reciprocal sum truncated at |k| <= 2 pi / dl, dl = 2 A.
    "latent_charges": dict(elements=(1, 6, 7, 8, 11, 17), channels=4, hidden=("4x0e+4x1o", "4x0e"), residual=(False, True), charge_head=True,
                           latent_charges=True, coulomb=True, gaussian_sigma=1.0, gaussian_self_energy=False,
                           coulomb_constant=90.0474 / (2 * 3.141592653589793), truncated_reciprocal_dl=2.0, seed=11,
                           charge_scale=15.0),  # latent charges of a realistic size (|q| up to about 0.5 e, as MACELES's)
    # A network whose energies are absurd (1e9 eV per unit readout), for the energy guard.
    "absurd_energy": dict(channels=2, hidden=("2x0e",), residual=(False,), seed=6, energy_scale=1e9),
}
for name, kwargs in models.items():
    builder.write_random_model(os.path.join(out, name + ".enn"), **kwargs)

# Weights that overflow double precision at ordinary positions (finite numbers, so the loader accepts them):
# the energy readout, or the charge head's, scaled so that the energy or the charges come out NaN or
# beyond 1e300, for the guards that refuse non-finite results on every platform.
overflowing = {"overflowing_energy": ("absurd_energy", "layers.0.readout"),
               "overflowing_charges": ("damped_charge", "charge_head.readout")}
for name, (source, readout) in overflowing.items():
    architecture, tensors = modelfile.read(os.path.join(out, source + ".enn"))
    tensors[readout + ".linear_1"] = tensors[readout + ".linear_1"] * 1e3
    tensors[readout + ".linear_2"] = tensors[readout + ".linear_2"] * 1e305
    modelfile.write(os.path.join(out, name + ".enn"), architecture, tensors)
print("test models written to", out)
