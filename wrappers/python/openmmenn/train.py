"""Train a charge-aware openmm-enn model on energies, forces, and optionally charges and dipoles.

    /usr/bin/python3 -m openmmenn.train --data data.extxyz --out model.enn [options]

Data: extxyz read with ASE; by default the keys written by `openmmenn.xtb` (xtb_energy, xtb_forces,
xtb_charges, xtb_dipole), in eV and Angstrom. Per-element E0 comes from a least-squares fit of the
training energies; the energy shift (mean interaction energy per atom), the scale (RMS force
component) and avg_num_neighbors come from the data. The model is the architecture of
openmmenn.builder / openmmenn.torch_model, exported to the model file the C++ platforms read.
Training is reproducible from --seed: the split, the initial weights and the batch order.

With a charge head the model's energy is, by default, E = E_network + E_coul(q): the Gaussian-damped
Coulomb energy of the predicted charges between the configuration's atoms with the Gaussian charges'
self energies (positive definite, so growing charges cannot lower it without bound; an Ewald sum in
periodic cells), declared in the model file so that every platform evaluates the same energy; the reference
charges (xtb_charges) are an auxiliary target. --coulomb none trains E = E_network alone.
"""
import argparse
import json
import sys
import time

import numpy as np
import torch

from . import builder
from .torch_model import TorchENNModel, neighbor_list


def load(path, keys):
    import ase.io
    configs = []
    for atoms in ase.io.read(path, ":"):
        c = {"z": atoms.numbers.copy(), "pos": atoms.positions.copy(),
             "cell": np.array(atoms.cell) if atoms.pbc.any() else None,
             "energy": float(atoms.info[keys["energy"]]), "forces": np.array(atoms.arrays[keys["forces"]]),
             "total_charge": float(atoms.info.get("total_charge", 0.0))}
        if keys["charges"] in atoms.arrays:
            c["charges"] = np.array(atoms.arrays[keys["charges"]])
        if keys["dipole"] in atoms.info:
            c["dipole"] = np.array(atoms.info[keys["dipole"]], dtype=float)
        configs.append(c)
    return configs


def fit_e0(configs, elements):
    counts = np.array([[np.sum(c["z"] == z) for z in elements] for c in configs], dtype=float)
    energies = np.array([c["energy"] for c in configs])
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return e0


def statistics(configs, elements, e0, r_max):
    index = {z: i for i, z in enumerate(elements)}
    per_atom = [(c["energy"] - sum(e0[index[z]] for z in c["z"])) / len(c["z"]) for c in configs]
    forces = np.concatenate([c["forces"].reshape(-1) for c in configs])
    neighbours = [len(neighbor_list(c["pos"], r_max, c["cell"])[0]) / len(c["z"]) for c in configs]
    return float(np.mean(per_atom)), float(np.sqrt(np.mean(forces ** 2))) or 1.0, float(np.mean(neighbours)) or 1.0


class Batch:
    """Several configurations as one disjoint graph."""

    def __init__(self, model, configs, dtype):
        pos, species, rec, sen, shifts, batch = [], [], [], [], [], []
        offset = 0
        for g, c in enumerate(configs):
            r, s, sh = c["graph"]
            pos.append(c["pos"])
            species.append(c["species"])
            rec.append(r + offset)
            sen.append(s + offset)
            shifts.append(sh)
            batch.append(np.full(len(c["z"]), g))
            offset += len(c["z"])
        self.positions = torch.tensor(np.concatenate(pos), dtype=dtype)
        self.species = torch.as_tensor(np.concatenate(species), dtype=torch.long)
        self.receivers = torch.as_tensor(np.concatenate(rec), dtype=torch.long)
        self.senders = torch.as_tensor(np.concatenate(sen), dtype=torch.long)
        self.shifts = torch.tensor(np.concatenate(shifts), dtype=dtype)
        self.batch = torch.as_tensor(np.concatenate(batch), dtype=torch.long)
        self.num_graphs = len(configs)
        self.cells = [c["cell"] for c in configs]
        self.num_atoms = torch.tensor([len(c["z"]) for c in configs], dtype=dtype)
        self.energy = torch.tensor([c["energy"] for c in configs], dtype=dtype)
        self.forces = torch.tensor(np.concatenate([c["forces"] for c in configs]), dtype=dtype)
        self.total_charge = torch.tensor([c["total_charge"] for c in configs], dtype=dtype)
        self.charges = (torch.tensor(np.concatenate([c["charges"] for c in configs]), dtype=dtype)
                        if all("charges" in c for c in configs) else None)
        self.dipole = (torch.tensor(np.array([c["dipole"] for c in configs]), dtype=dtype)
                       if all("dipole" in c for c in configs) else None)

    def predict(self, model, training):
        pos = self.positions.clone().requires_grad_(True)
        out = model(pos, self.species, self.receivers, self.senders, self.shifts, self.total_charge, self.batch, self.num_graphs,
                    self.cells)
        (grad,) = torch.autograd.grad(out["energies"].sum(), pos, create_graph=training)
        out["forces"] = -grad
        if "charges" in out:
            # Dipole of the predicted charges about each configuration's centroid.
            centroid = torch.zeros(self.num_graphs, 3, dtype=pos.dtype).index_add(0, self.batch, pos) / self.num_atoms[:, None]
            rel = pos - centroid[self.batch]
            out["dipole"] = torch.zeros(self.num_graphs, 3, dtype=pos.dtype).index_add(0, self.batch, out["charges"][:, None] * rel)
        return out


def errors(batch, out):
    e = {"energy_mae_per_atom": float(((out["energies"] - batch.energy).abs() / batch.num_atoms).mean()),
         "forces_mae": float((out["forces"] - batch.forces).abs().mean())}
    if batch.charges is not None and "charges" in out:
        e["charges_mae"] = float((out["charges"] - batch.charges).abs().mean())
    if batch.dipole is not None and "dipole" in out:
        e["dipole_error"] = float(torch.linalg.norm(out["dipole"] - batch.dipole, dim=1).mean())
    return e


def loss_of(batch, out, w):
    loss = w["energy"] * (((out["energies"] - batch.energy) / batch.num_atoms) ** 2).mean()
    loss = loss + w["forces"] * ((out["forces"] - batch.forces) ** 2).mean()
    if batch.charges is not None and "charges" in out:
        loss = loss + w["charges"] * ((out["charges"] - batch.charges) ** 2).mean()
    if batch.dipole is not None and "dipole" in out:
        loss = loss + w["dipole"] * ((out["dipole"] - batch.dipole) ** 2).mean()
    return loss


def progress(epoch, epochs, text, width=24):
    done = int(width * epoch / epochs)
    print(f"\repoch {epoch:4d}/{epochs} [{'#' * done}{'.' * (width - done)}] {text}", end="", flush=True)


def train(args):
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    keys = {"energy": args.energy_key, "forces": args.forces_key, "charges": args.charges_key, "dipole": args.dipole_key}
    configs = load(args.data, keys)
    order = rng.permutation(len(configs))
    n_valid = max(1, int(round(args.valid_fraction * len(configs))))
    valid = [configs[i] for i in order[:n_valid]]
    train_set = [configs[i] for i in order[n_valid:]]
    elements = args.elements or sorted({int(z) for c in configs for z in c["z"]})
    e0 = fit_e0(train_set, elements)
    shift, scale, avg = statistics(train_set, elements, e0, args.r_max)
    offsets = None
    if all("charges" in c for c in train_set):
        q = np.concatenate([c["charges"] for c in train_set])
        zz = np.concatenate([c["z"] for c in train_set])
        offsets = [float(q[zz == z].mean()) if np.any(zz == z) else 0.0 for z in elements]
    num_layers = len(args.hidden)
    arch, tensors = builder.random_model(
        elements=tuple(elements), channels=args.channels, hidden=tuple(args.hidden), residual=(False,) + (True,) * (num_layers - 1),
        correlation=args.correlation, sh_lmax=args.lmax, message_lmax=args.lmax, r_max=args.r_max, num_bessel=args.num_bessel,
        radial_hidden=tuple(args.radial_hidden), readout_hidden=args.readout_hidden, charge_head=offsets is not None and not args.no_charges,
        charge_offsets=offsets, seed=args.seed, avg_num_neighbors=avg, energy_scale=scale,
        coulomb=offsets is not None and not args.no_charges and args.coulomb != "none",
        gaussian_sigma=args.gaussian_sigma if args.coulomb == "gaussian" else None, gaussian_self_energy=not args.no_gaussian_self_energy)
    arch["source"] = f"openmmenn.train on {args.data}"
    model = TorchENNModel(arch, tensors, dtype)
    if model.coulomb_included:
        # The network fits what the Coulomb term of the reference charges leaves: E0 and the shift
        # come from those energies, so that training starts near the data.
        remainders = []
        for c in train_set:
            with torch.no_grad():
                e_coul = float(model.coulomb_energy(torch.tensor(c["pos"], dtype=dtype), torch.tensor(c["charges"], dtype=dtype), c["cell"]))
            remainders.append(dict(c, energy=c["energy"] - e_coul))
        e0 = fit_e0(remainders, elements)
        shift, _, _ = statistics(remainders, elements, e0, args.r_max)
        print(f"the model's energy includes the Coulomb energy of its charges ({args.coulomb} damping"
              + (f", sigma {args.gaussian_sigma}" if args.coulomb == "gaussian" else "") + ")")
    arch["energy"]["e0"] = [float(x) for x in e0]
    arch["energy"]["shift"] = shift
    index = {z: i for i, z in enumerate(elements)}
    for c in configs:
        c["species"] = np.array([index[int(z)] for z in c["z"]])
        c["graph"] = neighbor_list(c["pos"], args.r_max, c["cell"])
    valid_batch = Batch(model, valid, dtype)
    weights = {"energy": args.energy_weight, "forces": args.forces_weight, "charges": args.charges_weight, "dipole": args.dipole_weight}
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=args.lr_factor, patience=args.lr_patience)
    best, best_epoch, history = float("inf"), 0, []
    start = time.time()
    metrics = open(args.metrics, "w") if args.metrics else None
    print(f"{len(train_set)} training and {len(valid)} validation configurations; elements {elements}; "
          f"E0 {np.round(e0, 4).tolist()}; shift {shift:.4f}; scale {scale:.4f}; avg neighbours {avg:.2f}")
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = rng.permutation(len(train_set))
        total = 0.0
        for i in range(0, len(perm), args.batch_size):
            batch = Batch(model, [train_set[j] for j in perm[i:i + args.batch_size]], dtype)
            optimizer.zero_grad()
            loss = loss_of(batch, batch.predict(model, True), weights)
            loss.backward()
            optimizer.step()
            total += float(loss) * batch.num_graphs
        out = valid_batch.predict(model, False)
        val_loss = float(loss_of(valid_batch, out, weights))
        row = {"epoch": epoch, "train_loss": total / len(train_set), "valid_loss": val_loss, "lr": optimizer.param_groups[0]["lr"],
               "seconds": round(time.time() - start, 2), **errors(valid_batch, out)}
        history.append(row)
        if metrics:
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
        scheduler.step(val_loss)
        if val_loss < best:
            best, best_epoch = val_loss, epoch
            model.export(args.out)
            if args.checkpoint:
                torch.save({"epoch": epoch, "arch": arch, "state": model.state_dict(), "optimizer": optimizer.state_dict()},
                           args.checkpoint)
        progress(epoch, args.epochs, f"loss {row['train_loss']:.4g} val F MAE {row['forces_mae']:.4f} eV/A "
                                     f"E MAE {row['energy_mae_per_atom'] * 1000:.2f} meV/atom lr {row['lr']:.2g}")
        if epoch - best_epoch >= args.patience:
            print(f"\nearly stop: no improvement for {args.patience} epochs")
            break
    print(f"\nbest validation loss {best:.5g} at epoch {best_epoch}; model written to {args.out}")
    if metrics:
        metrics.close()
    return history


def evaluate(model_path, data_path, keys, dtype=torch.float64):
    """Errors of a model file against labelled data: energy MAE per atom, force MAE, charge MAE and
    the mean dipole error (dipole of the predicted charges about the centroid)."""
    model = TorchENNModel.from_file(model_path, dtype)
    configs = load(data_path, keys)
    index = {z: i for i, z in enumerate(model.elements)}
    for c in configs:
        c["species"] = np.array([index[int(z)] for z in c["z"]])
        c["graph"] = neighbor_list(c["pos"], model.r_max, c["cell"])
    totals, count = {}, 0
    for i in range(0, len(configs), 16):
        chunk = configs[i:i + 16]
        batch = Batch(model, chunk, dtype)
        for key, value in errors(batch, batch.predict(model, False)).items():
            totals[key] = totals.get(key, 0.0) + value * len(chunk)
        count += len(chunk)
    return {key: value / count for key, value in totals.items()}


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="extxyz file")
    p.add_argument("--out", help="model file to write (the best validation epoch)")
    p.add_argument("--evaluate", metavar="MODEL", help="only report the errors of MODEL on --data")
    p.add_argument("--checkpoint", help="torch checkpoint of the best epoch")
    p.add_argument("--metrics", help="JSON-lines metrics file, one line per epoch")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--elements", type=int, nargs="*", help="atomic numbers (default: those in the data)")
    p.add_argument("--r-max", type=float, default=4.5)
    p.add_argument("--num-bessel", type=int, default=8)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--hidden", nargs="+", default=["16x0e+16x1o", "16x0e"], help="hidden irreps of each layer")
    p.add_argument("--correlation", type=int, default=3)
    p.add_argument("--lmax", type=int, default=3)
    p.add_argument("--radial-hidden", type=int, nargs="*", default=[32, 32])
    p.add_argument("--readout-hidden", type=int, default=16)
    p.add_argument("--no-charges", action="store_true", help="no charge head even if the data has charges")
    p.add_argument("--coulomb", choices=["gaussian", "point", "none"], default="gaussian",
                   help="the model's energy includes the Coulomb energy of its predicted charges between its atoms, "
                        "Gaussian-damped or of point charges, or not at all (none: ML-ML electrostatics left to the network)")
    p.add_argument("--gaussian-sigma", type=float, default=1.0, help="width of the Gaussian damping (length unit of the data)")
    p.add_argument("--no-gaussian-self-energy", action="store_true",
                   help="leave out the Gaussian charges' self energies (which keep the Coulomb energy positive definite)")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--lr-factor", type=float, default=0.5)
    p.add_argument("--lr-patience", type=int, default=8)
    p.add_argument("--patience", type=int, default=30, help="early stopping")
    p.add_argument("--energy-weight", type=float, default=100.0)
    p.add_argument("--forces-weight", type=float, default=10.0)
    p.add_argument("--charges-weight", type=float, default=10.0)
    p.add_argument("--dipole-weight", type=float, default=1.0)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--energy-key", default="xtb_energy")
    p.add_argument("--forces-key", default="xtb_forces")
    p.add_argument("--charges-key", default="xtb_charges")
    p.add_argument("--dipole-key", default="xtb_dipole")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.evaluate:
        keys = {"energy": args.energy_key, "forces": args.forces_key, "charges": args.charges_key, "dipole": args.dipole_key}
        result = evaluate(args.evaluate, args.data, keys)
        print(json.dumps(result, indent=1))
        return 0
    if not args.out:
        raise SystemExit("--out is required for training")
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
