"""Real spherical harmonics, Wigner 3j symbols and symmetric-contraction U tensors.

Written for openmm-enn from the published conventions of e3nn 0.4.4 (the version MACE
pins): the real basis is obtained from the complex |l m> basis by e3nn's change of
basis, l = 1 is ordered (x, y, z) with y as the polar axis, harmonics use "component"
normalisation (|Y_l|^2 = 2l + 1), and each Wigner 3j block has unit Frobenius norm
with e3nn 0.4.4's sign rule.  Only numpy is used.
"""
import functools
import itertools

import numpy as np


def parse_irreps(text):
    """'16x0e+16x1o' -> [(16, 0, 1), (16, 1, -1)]: (multiplicity, degree, parity)."""
    out = []
    for term in text.split("+"):
        mul, ir = term.split("x")
        out.append((int(mul), int(ir[:-1]), 1 if ir[-1] == "e" else -1))
    return out


def irreps_str(entries):
    """The inverse of parse_irreps."""
    return "+".join(f"{m}x{l}{'e' if p > 0 else 'o'}" for m, l, p in entries)


def _real_to_complex(l):
    """Unitary Q with complex = Q @ real (e3nn's convention, including the (-i)^l)."""
    q = np.zeros((2 * l + 1, 2 * l + 1), dtype=complex)
    s = 2 ** -0.5
    for m in range(-l, 0):
        q[l + m, l + abs(m)] = s
        q[l + m, l - abs(m)] = -1j * s
    q[l, l] = 1
    for m in range(1, l + 1):
        q[l + m, l + abs(m)] = (-1) ** m * s
        q[l + m, l - abs(m)] = 1j * (-1) ** m * s
    return (-1j) ** l * q


@functools.lru_cache(maxsize=None)
def so3_generators(l):
    """The three real, antisymmetric generators of the degree-l representation."""
    j = l
    m = np.arange(-j, j)
    raising = np.diag(-np.sqrt(j * (j + 1) - m * (m + 1)), k=-1)
    m = np.arange(-j + 1, j + 1)
    lowering = np.diag(np.sqrt(j * (j + 1) - m * (m - 1)), k=1)
    m = np.arange(-j, j + 1)
    su2 = [0.5 * (raising + lowering), np.diag(1j * m), -0.5j * (raising - lowering)]
    q = _real_to_complex(l)
    gens = np.array([np.real(q.conj().T @ x @ q) for x in su2])
    return gens


def _null_space(a, tol=1e-9):
    _, s, vt = np.linalg.svd(a)
    rank = int(np.sum(s > tol * max(1.0, s[0] if len(s) else 1.0)))
    return vt[rank:]


def _fix_sign(c):
    """e3nn 0.4.4: the centre entry positive, else the first non-zero entry (row-major)."""
    l1, l2, l3 = [(n - 1) // 2 for n in c.shape]
    centre = c[l1, l2, l3]
    if abs(centre) > 1e-10:
        return c if centre > 0 else -c
    flat = c.reshape(-1)
    first = flat[np.argmax(np.abs(flat) > 1e-10)]
    return c if first > 0 else -c


@functools.lru_cache(maxsize=None)
def _wigner_3j_sorted(l1, l2, l3):
    dims = (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
    rows = []
    for k in range(3):
        x1, x2, x3 = so3_generators(l1)[k], so3_generators(l2)[k], so3_generators(l3)[k]
        op = (np.kron(np.kron(x1, np.eye(dims[1])), np.eye(dims[2]))
              + np.kron(np.kron(np.eye(dims[0]), x2), np.eye(dims[2]))
              + np.kron(np.kron(np.eye(dims[0]), np.eye(dims[1])), x3))
        rows.append(op)
    ns = _null_space(np.concatenate(rows))
    if len(ns) != 1:
        raise ValueError(f"no unique coupling for ({l1},{l2},{l3})")
    c = ns[0].reshape(dims)
    c[np.abs(c) < 1e-14] = 0.0
    return _fix_sign(c / np.linalg.norm(c))


def wigner_3j(l1, l2, l3):
    """The (2l1+1, 2l2+1, 2l3+1) coupling tensor C[m1, m2, m3] with ||C|| = 1."""
    if not abs(l1 - l2) <= l3 <= l1 + l2:
        raise ValueError(f"({l1},{l2},{l3}) violates the triangle rule")
    ls = (l1, l2, l3)
    order = sorted(range(3), key=lambda i: ls[i])
    c = _wigner_3j_sorted(*[ls[i] for i in order])
    # c has axes in the sorted order; bring them back to (l1, l2, l3).
    c = np.transpose(c, np.argsort(order))
    parity = _permutation_parity(order)
    if parity and (l1 + l2 + l3) % 2 == 1:
        c = -c
    return c.copy()


def _permutation_parity(perm):
    perm = list(perm)
    odd = 0
    for i in range(len(perm)):
        for j in range(i + 1, len(perm)):
            if perm[i] > perm[j]:
                odd ^= 1
    return odd


def spherical_harmonics(lmax, vectors):
    """e3nn real harmonics of the normalised vectors, l = 0..lmax concatenated, shape [n, (lmax+1)^2]."""
    v = np.atleast_2d(np.asarray(vectors, dtype=float))
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    ys = [np.ones((len(u), 1))]
    if lmax >= 1:
        ys.append(np.sqrt(3.0) * u)
    for l in range(2, lmax + 1):
        y = np.einsum("ijk,ni,nj->nk", wigner_3j(1, l - 1, l), ys[1], ys[l - 1])
        y *= np.sqrt(2 * l + 1) / np.linalg.norm(y, axis=1, keepdims=True)
        ys.append(y)
    return np.concatenate(ys, axis=1)


def rotation_matrix_for_irrep(l, rotation):
    """D_l(R) for a proper rotation R (3x3), by least squares on the harmonics."""
    pts = np.random.default_rng(1).normal(size=(4 * (2 * l + 1) + 8, 3))
    y = spherical_harmonics(l, pts)[:, l * l:]
    yr = spherical_harmonics(l, pts @ np.asarray(rotation).T)[:, l * l:]
    d, *_ = np.linalg.lstsq(y, yr, rcond=None)
    return d.T


def _irrep_blocks(features):
    """Offsets of each (l, p) entry of one channel's feature vector."""
    offsets, offset = [], 0
    for l, _ in features:
        offsets.append(offset)
        offset += 2 * l + 1
    return offsets, offset


def symmetric_contraction_basis(features, out, correlation, parity=True):
    """A basis of symmetric equivariant tensors U[M, a1..a_nu, k] mapping Sym^nu(features) to `out`.

    features: [(l, p), ...] of one channel (e.g. [(0, 1), (1, -1), (2, 1), (3, -1)]);
    out: (L, P); with parity=False parities are ignored (SO(3) models).
    Built from products of our Wigner 3j blocks, symmetrised over the nu indices, and
    orthonormalised. Any basis spans the same maps; the weights pick one.
    """
    L, P = out
    offsets, D = _irrep_blocks(features)
    n = len(features)
    candidates = []

    def ok(p):
        return (not parity) or p == P

    if correlation == 1:
        for i, (l, p) in enumerate(features):
            if l == L and ok(p):
                t = np.zeros((2 * L + 1, D))
                t[:, offsets[i]:offsets[i] + 2 * l + 1] = np.eye(2 * l + 1)
                candidates.append(t)
    elif correlation == 2:
        for i, j in itertools.combinations_with_replacement(range(n), 2):
            (l1, p1), (l2, p2) = features[i], features[j]
            if abs(l1 - l2) <= L <= l1 + l2 and ok(p1 * p2):
                t = np.zeros((2 * L + 1, D, D))
                t[:, offsets[i]:offsets[i] + 2 * l1 + 1, offsets[j]:offsets[j] + 2 * l2 + 1] = \
                    np.transpose(wigner_3j(l1, l2, L), (2, 0, 1))
                candidates.append(t + np.transpose(t, (0, 2, 1)))
    elif correlation == 3:
        for i, j, k in itertools.combinations_with_replacement(range(n), 3):
            (l1, p1), (l2, p2), (l3, p3) = features[i], features[j], features[k]
            if not ok(p1 * p2 * p3):
                continue
            for lam in range(abs(l1 - l2), l1 + l2 + 1):
                if not abs(lam - l3) <= L <= lam + l3:
                    continue
                c = np.einsum("abm,mcM->Mabc", wigner_3j(l1, l2, lam), wigner_3j(lam, l3, L))
                t = np.zeros((2 * L + 1, D, D, D))
                t[:, offsets[i]:offsets[i] + 2 * l1 + 1, offsets[j]:offsets[j] + 2 * l2 + 1,
                  offsets[k]:offsets[k] + 2 * l3 + 1] = c
                candidates.append(sum(np.transpose(t, (0,) + tuple(1 + q for q in perm))
                                      for perm in itertools.permutations(range(3))))
    else:
        raise ValueError("correlation must be 1, 2 or 3")
    shape = (2 * L + 1,) + (D,) * correlation
    if not candidates:
        return np.zeros(shape + (0,))
    flat = np.array([c.reshape(-1) for c in candidates])
    u, s, vt = np.linalg.svd(flat, full_matrices=False)
    basis = vt[s > 1e-10 * s[0]]
    basis[np.abs(basis) < 1e-15] = 0.0
    return np.moveaxis(basis.reshape((-1,) + shape), 0, -1)
