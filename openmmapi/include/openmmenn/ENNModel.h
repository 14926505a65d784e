#ifndef OPENMM_ENN_MODEL_H_
#define OPENMM_ENN_MODEL_H_

// The parsed, validated contents of an openmm-enn model file (docs/model-format.md).
// Everything is in the model's own units (model.units); platforms convert at the boundary.
// All numbers are kept in double; platforms convert to their working precision.

#include <array>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace OpenMMENN {

/** One irreducible representation of O(3): degree l and parity p (+1 even, -1 odd). */
struct Irrep {
    int l = 0, p = 1;
    int dim() const { return 2 * l + 1; }
    bool operator==(const Irrep& o) const { return l == o.l && p == o.p; }
    bool operator!=(const Irrep& o) const { return !(*this == o); }
};

/** A direct sum of irreps, e.g. "16x0e+16x1o", laid out [entry][channel][2l+1]. */
struct Irreps {
    struct Entry {
        int mul;
        Irrep ir;
        int offset; // first index of this entry in the feature vector
        int dim() const { return mul * ir.dim(); }
    };
    std::vector<Entry> entries;
    int dim = 0;
    /** Throws OpenMMException naming `field` if the text is not a valid irreps string. */
    static Irreps parse(const std::string& text, const std::string& field);
    std::string str() const;
    /** The irrep of every component, in layout order (to compare layouts of unsimplified irreps). */
    std::vector<Irrep> componentIrreps() const;
};

/** e3nn Linear: for each path, out[w,m] += pathWeight * sum_u W[u,w] in[u,m] between equal irreps.
 *  With perElement, there is one weight set per element (MACE's species-dependent skip). */
struct LinearSpec {
    struct Path {
        int in, out;
        double weight;
        int weightOffset; // W[u,w] at weightOffset + u*mulOut + w
    };
    Irreps in, out;
    std::vector<Path> paths;
    bool perElement = false;
    int weightsPerElement = 0;
    std::vector<double> weights; // [numElements or 1][weightsPerElement]
    /** e3nn's biases (format version 6): out[j] += bias[j] on the scalar outputs (zeros elsewhere); empty: none. */
    std::vector<double> bias;
};

/** A smooth scalar activation times a normalisation constant: scale * f(x). */
struct ActivationSpec {
    enum Kind { SiLU, Tanh, Sigmoid } kind = SiLU;
    double scale = 1.0;
};

/** Radial MLP: t <- act(norm_k(t @ W_k * weightScale_k + bias_k)) for hidden layers, t @ W_k * weightScale_k + bias_k on the
 *  last. e3nn's (MACE's classic blocks) has no biases and no normalisation; MACE's RadialMLP (the non-linear block) has
 *  biases and a LayerNorm on each hidden layer. */
struct RadialMLPSpec {
    std::vector<int> sizes;                   // sizes[0] = inputs (the radial basis, then any edge embeddings), back() = outputs
    std::vector<std::vector<double>> weights; // W_k, [sizes[k]][sizes[k+1]] row-major
    std::vector<double> weightScales;
    std::vector<std::vector<double>> biases;  // per layer [sizes[k+1]], or empty: none
    /** torch's LayerNorm over a hidden layer's outputs: (x - mean) / sqrt(var + eps) * weight + bias (var biased). */
    struct LayerNorm {
        std::vector<double> weight, bias;
        double eps = 0.0;
    };
    std::vector<LayerNorm> layerNorms;        // per hidden layer, or empty: none
    ActivationSpec activation;
};

/** Channel-wise ('uvu') tensor product of node features (in1) with edge harmonics (in2, all 1x).
 *  out[u,k] += pathWeight * w_edge[weightOffset + u] * sum_ij C[i,j,k] in1[u,i] in2[j]. */
struct TensorProductSpec {
    struct Path {
        int in1, in2, out;
        double weight;
        int weightOffset;
    };
    Irreps in1, in2, out;
    std::vector<Path> paths;
    int numWeights = 0;
    /** Wigner 3j blocks this layer's paths use instead of the model's (format version 3): the model's own copies of
     *  them where it stores them in float32, as e3nn keeps them in a float32 model, by (l1, l2, l3). */
    std::map<std::array<int, 3>, std::vector<double>> w3j;
};

/** Symmetric contraction for one output irrep: B[c,M] = sum_nu sum_k W_nu[z,k,c] U_nu[M,a1..a_nu,k] A[c,a1]...A[c,a_nu]. */
struct ContractionSpec {
    Irrep out;
    int correlation = 0;
    std::vector<std::vector<double>> U;       // U[nu-1]: [2L+1][D^nu][K_nu]
    std::vector<int> numBasis;                // K_nu
    std::vector<std::vector<double>> weights; // W[nu-1]: [numElements][K_nu][channels]
};

struct ReadoutSpec {
    bool nonlinear = false;
    LinearSpec linear1;       // the only linear of a linear readout
    ActivationSpec activation; // nonlinear only
    LinearSpec linear2;       // nonlinear only
};

/** MACE's density normalisation: the message of atom i is divided by alpha + beta d_i, d_i = sum over i's edges of
 *  tanh(s_e^2), s_e the output of a network of the edge's radial inputs (RealAgnosticDensity*InteractionBlock: one
 *  linear of the basis, alpha = beta = 1; RealAgnosticResidualNonLinearInteractionBlock: a RadialMLP, learned alpha
 *  and beta). With apply_cutoff false each tanh(s_e^2) is multiplied by the envelope. */
struct DensityNormalizationSpec {
    RadialMLPSpec mlp; // sizes [inputs, ..., 1]
    double alpha = 1.0, beta = 1.0;
};

/** e3nn's Gate as MACE's GatedEquivariantBlock lays it out: out = [scalarActivation(in[scalarStart ..]) for
 *  scalarCount], then for each gated entry g, in order, out[.. + u dim + m] = in[g.start + u dim + m] *
 *  gateActivation(in[gateStart + g.gateOffset + u]), u < g.mul. */
struct GateSpec {
    struct Gated {
        int start, mul, dim, gateOffset;
    };
    Irreps in, out;
    int scalarStart = 0, scalarCount = 0, gateStart = 0, gateCount = 0;
    ActivationSpec scalarActivation, gateActivation;
    std::vector<Gated> gated;
};

/** What MACE's RealAgnosticResidualNonLinearInteractionBlock adds to the residual block: learned element embeddings of
 *  the sender and the receiver appended to the radial networks' inputs; the message M (after `linear`, divided by
 *  alpha + beta d, see DensityNormalizationSpec) plus linearResidual(linear_up output), through a gate and linear2. */
struct NonLinearBlockSpec {
    LinearSpec sourceEmbedding, targetEmbedding; // one-hot (n_elements x 0e) -> scalars, of the sender and the receiver
    LinearSpec linearResidual;                   // linear_up output -> gate input
    GateSpec gate;
    LinearSpec linear2;                          // gate output -> message
};

/** MACE's GenericJointEmbedding of the graph's total charge and spin multiplicity (categorical inputs): each input's
 *  table row (class = value + offset) concatenated, times `projection` ([sum of dims][features], no bias), through
 *  torch's SiLU, added to every atom's initial features; with a readout, E += readout(initial features) per atom
 *  (MACE's embedding_readout, not scaled). */
struct JointEmbeddingSpec {
    struct Input {
        enum Source { TotalCharge, SpinMultiplicity } source = TotalCharge;
        int numClasses = 0, offset = 0, dim = 0;
        std::vector<double> table; // [numClasses][dim]
    };
    std::vector<Input> inputs;
    std::vector<double> projection; // [sum of dims][embedding.out.dim]
    bool hasReadout = false;
    LinearSpec readout;             // embedding.out -> 1x0e
};

/** MACE's distance transform of the radial basis' argument (the envelope stays on the distance itself). Agnesi:
 *  y = 1 / (1 + a x^q / (1 + x^(q - p))), x = r / r0, r0 = (R_i + R_j) / 2 from the elements' covalent radii. Soft:
 *  y = p0 + (r - p0) (1 + tanh(alpha (r - m) / (p1 - p0))) / 2, p0 = 3/4 r0, p1 = 4/3 r0, m = (p0 + p1) / 2,
 *  r0 = R_i + R_j. */
struct DistanceTransformSpec {
    enum Kind { None, Agnesi, Soft } kind = None;
    double a = 0.0, q = 0.0, p = 0.0; // Agnesi
    double alpha = 0.0;               // Soft
    std::vector<double> covalentRadii; // per element, length unit
};

/** MACE's ZBL pair repulsion (ZBLBasis): per edge (both directions) 1/2 k Z_i Z_j / r sum_k c_k exp(-e_k r / s) times
 *  the polynomial envelope of order envelopeP with cutoff R_i + R_j, s = aPrefactor * bohr / (Z_i^aExponent +
 *  Z_j^aExponent); scaled by energy.scale with the network's energy. */
struct PairRepulsionSpec {
    std::vector<double> c, exponents; // 4 each
    double aPrefactor = 0.0, aExponent = 0.0, bohr = 0.0, coulomb = 0.0;
    int envelopeP = 0;
    std::vector<double> covalentRadii; // per element, length unit
};

struct LayerSpec {
    bool residual = true;     // MACE RealAgnosticResidualInteractionBlock; false: RealAgnosticInteractionBlock
    bool nonlinear = false;   // MACE RealAgnosticResidualNonLinearInteractionBlock (residual too)
    NonLinearBlockSpec nonlinearBlock;
    double avgNumNeighbors = 1.0;
    bool densityNormalized = false; // MACE's density blocks: the message is also divided by alpha + beta d_i
    DensityNormalizationSpec density;
    LinearSpec linearUp;
    RadialMLPSpec radial;
    TensorProductSpec conv;
    LinearSpec linear;        // simplified conv output -> message irreps (non-linear block: -> gate input)
    LinearSpec skip;          // per element; residual: input -> output, else: message -> message
    int channels = 0;         // multiplicity of every message irrep
    int featuresPerChannel = 0; // D = sum of (2l+1) over the message irreps
    std::vector<ContractionSpec> contractions;
    LinearSpec productLinear;
    ReadoutSpec readout;
    const Irreps& irrepsIn() const { return linearUp.in; }
    const Irreps& irrepsMessage() const { return nonlinear ? nonlinearBlock.linear2.out : linear.out; }
    /** Whether the radial networks also read element embeddings of the edge's atoms (the non-linear block). */
    bool hasEdgeEmbeddings() const { return nonlinear; }
    const Irreps& irrepsOut() const { return productLinear.out; }
};

/** MACE's SparseUvuTensorProduct: channel-wise products of two feature vectors of equal multiplicity, on two kinds of
 *  path: "dot" (l x l -> 0): out[u] += w_path sum_v W[u,v] (x1[u,:] . x2[v,:]) / sqrt(2l+1); "scale" (l x 0 -> l):
 *  out[u,m] += w_path x1[u,m] (sum_v W[u,v] x2[v]) / sqrt(2l+1). W of a path: [mul1][mul2] at weightOffset. */
struct ChannelProductSpec {
    struct Path {
        int in1, in2, out;
        double weight;
        bool dot;
        int weightOffset;
    };
    Irreps in1, in2, out;
    std::vector<Path> paths;
    std::vector<double> weights;
};

/** MACE's NonLinearBiasReadoutBlock (gate empty: an activation of scalar hidden features) and
 *  GeneralNonLinearBiasReadoutBlock (a gate): linear2(act(linearMid(act(linear1(x))))), linearMid and linear2 biased. */
struct BiasedReadoutSpec {
    LinearSpec linear1, linearMid, linear2;
    bool gated = false;
    ActivationSpec activation; // not gated
    GateSpec gate;             // gated
};

/** MACE's AgnosticEmbeddedOneBodyVariableUpdate (one field-update step): per atom, from the mixed features h, the
 *  potential features V and the current multipoles q: e = potentialLinear(V) + nodeFeatsLinear(h) + chargeEmbedding(q);
 *  s = nonlinearity([dotProducts(h, e), sourceEmbedding(element)]); the multipole update and two Fukui weights are
 *  readout(tpOut(h, s)). */
struct FieldUpdateSpec {
    LinearSpec potentialLinear, nodeFeatsLinear, chargeEmbedding, sourceEmbedding;
    ChannelProductSpec dotProducts, tpOut;
    RadialMLPSpec nonlinearity;
    BiasedReadoutSpec readout;
};

/** MACE's OneBodyMLPFieldReadout (the local electron energy): mlp([dotQ(h, linearUpQ(q0 + q)), dotV(h, linearUpV(V))]). */
struct ElectronEnergySpec {
    LinearSpec linearUpQ, linearUpV;
    ChannelProductSpec dotQ, dotV;
    RadialMLPSpec mlp;
};

/** A set of graph-longrange's Gaussian basis functions in Fourier space: for width j and degree l, the radial part
 *  amplitudes[j][l] |k|^l exp(-sigma2[j] |k|^2 / 2) times the real harmonic Y_lm(k / |k|) (integral normalisation) and
 *  the phase (-i)^l. */
struct GaussianBasisSpec {
    std::vector<double> sigma2;
    std::vector<std::vector<double>> amplitudes;
};

/** MACE's PolarMACE head (format version 6): spin-resolved Gaussian multipoles (l <= multipoleLmax, two spin channels
 *  alpha and beta of (L+1)^2 entries each) from every layer, constrained to the total charge and spin by Fukui weights,
 *  updated in a fixed number of steps from the potential and field they create (projected on Gaussian probes of the
 *  given widths), then their Coulomb energy and a local electron energy. Open boundaries: graph-longrange's real-space
 *  sums, in which a dipole is four displaced point charges (finite differences) and a pair of unit charges at distance
 *  d interacts through fieldConstant erf(d / (2 w)) / (d + softening). Periodic cells: its reciprocal-space sums of the
 *  Gaussian densities (GaussianBasisSpec) over the k vectors with |k| <= kspaceCutoff, no real-space part. */
struct PolarSpec {
    int multipoleLmax = 0;
    double multipoleSigma = 0.0;
    int fieldLmax = 0;
    std::vector<double> fieldWidths;
    std::vector<double> fieldNorms;          // per feature entry (the field irreps' dimension)
    std::vector<LinearSpec> spinSources;     // EnvironmentDependentSpinSourceBlock, one per layer
    std::vector<LinearSpec> featureMixer;    // MultiLayerFeatureMixer, one per layer
    BiasedReadoutSpec fukui;                 // of the last layer's features: two weights, alpha and beta
    std::vector<FieldUpdateSpec> fieldUpdates;
    bool hasElectronEnergy = false;
    ElectronEnergySpec electronEnergy;
    double fieldConstant = 0.0;              // energy x length / e^2 (graph-longrange's 1/(4 pi eps0))
    double softening = 0.0;                  // length
    double featureOffset = 0.0, energyOffset = 0.0; // finite-difference displacements of the dipoles (length)
    std::vector<double> featureWidthFactors; // w per probe width: erf(d / (2 w))
    std::vector<double> l0Factors, l1Factors; // per probe width
    /** A Gaussian's field on its own probe (graph-longrange's self-interaction terms), where the model includes it:
     *  feature[feature] += value * multipole[source] (energy: E += value/2 q[feature] q[source]). */
    struct SelfTerm {
        int feature, source;
        double value;
    };
    std::vector<SelfTerm> featureSelfTerms, energySelfTerms;
    bool includeFeatureSelfInteraction = false, includeEnergySelfInteraction = false;
    double kspaceCutoff = 0.0;                // inverse length
    GaussianBasisSpec densityBasis, featureBasis; // one width (sigma); one per probe width
    /** A uniform external field's projection on the probes (graph-longrange's DisplacedGTOExternalFieldBlock), per feature
     *  entry: the coefficients of the external potential at the atom (relative to the region's mean position) and of
     *  the potential's gradient x, y, z; each spin channel's features get half of it. Empty: the file has none (converted
     *  before openmm-enn read it), and no external field can be applied. */
    std::vector<std::array<double, 4>> externalFieldProjection;
    int multipoleDim() const { return (multipoleLmax + 1) * (multipoleLmax + 1); }
    int fieldDim() const { return static_cast<int>(fieldWidths.size()) * (fieldLmax + 1) * (fieldLmax + 1); }
};

/** 1/(4 pi eps0) in kJ mol^-1 nm e^-2 from CODATA 2018, computed as OpenMM computes it (138.9354576...). */
const double ONE_4PI_EPS0 = 1.0 / (4 * M_PI * (1e-6 * 8.8541878128e-12 / (1.602176634e-19 * 1.602176634e-19 * 6.02214076e23)));

class ENNModel {
public:
    /** Parse and validate the bytes of a model file. Throws OpenMMException naming the bad field. */
    static std::shared_ptr<const ENNModel> fromBytes(const std::string& bytes);
    static std::string readFile(const std::string& path);

    /** The newest version this build reads (and writes for a model that needs it); it reads every version from 1
     *  (docs/model-format.md, Versioning). */
    static const int FormatVersion = 6;
    int formatVersion = 0;
    std::string energyUnit, lengthUnit;
    double energyToKJPerMol = 1.0, lengthToNm = 1.0;
    std::vector<int> elements;   // atomic numbers, in the model's element order
    bool o3 = true;              // false: SO(3) model, parity selection rules not enforced
    double rMax = 0.0;
    std::vector<double> besselFrequencies;
    double besselPrefactor = 0.0;
    int envelopeP = 0;
    /** MACE's apply_cutoff: true, the envelope multiplies the radial basis; false, it multiplies each layer's radial
     *  outputs (tensor-product weights, edge densities) instead. */
    bool applyCutoff = true;
    DistanceTransformSpec distanceTransform;
    bool hasPairRepulsion = false;
    PairRepulsionSpec pairRepulsion;
    int shLmax = 0;
    /** e3nn's harmonics of (v_y, v_z, v_x) instead of v (PolarMACE; spherical_harmonics.input "yzx", version 6): e3nn's
     *  l = 1 harmonics of u are proportional to u itself, so the features' l = 1 entries are then the (y, z, x) components,
     *  the real-harmonics order graph-longrange's multipoles and fields use. */
    bool harmonicsOfYZX = false;
    /** Wigner 3j blocks by (l1, l2, l3), each [2l1+1][2l2+1][2l3+1]. */
    std::map<std::array<int, 3>, std::vector<double>> wigner3j;
    LinearSpec embedding;        // one-hot (n_elements x 0e) -> first layer input
    bool hasJointEmbedding = false; // the total charge and spin multiplicity enter the initial features
    JointEmbeddingSpec jointEmbedding;
    std::vector<LayerSpec> layers;
    std::vector<double> e0;      // per element
    double energyScale = 1.0, energyShift = 0.0;
    bool hasChargeHead = false;
    /** A charge readout of one layer's output features; the raw charge sums them over the list (MACELES's LES
     *  readouts: every layer; otherwise the last layer only). */
    struct ChargeReadout {
        int layer = 0;
        ReadoutSpec readout;
    };
    std::vector<ChargeReadout> chargeReadouts;
    /** true: the charges are shifted to the total charge (or each charge group's); false (charge_head.total_charge
     *  "unconstrained", MACELES's latent charges): the raw charges are the charges, and no total charge applies. */
    bool chargesConstrained = true;
    std::vector<double> chargeElementOffsets; // per element, added to the readout (zeros if absent)
    /** The model's energy includes E_coul(q), the Coulomb energy of its predicted charges between its own
     *  atoms (charge_head.coulomb.included); otherwise ML-ML electrostatics are implicit in the network. */
    bool chargeCoulombIncluded = false;
    double chargeGaussianSigma = 0.0;         // > 0: that term is erf(r / (sqrt(2) sigma)) / r (length unit)
    /** With Gaussian damping: the term also holds each Gaussian charge's self energy q_i^2 / (sigma sqrt(2 pi)),
     *  which makes the Coulomb energy of the charges positive definite (it cannot fall without bound as they grow). */
    bool chargeGaussianSelfEnergy = false;
    /** k of the model's own Coulomb term, in the model's units (energy x length / e^2): 1/(4 pi eps0) unless the file
     *  declares the constant it was trained with (charge_head.coulomb.constant; the les library's norm_factor / 2 pi). */
    double chargeCoulombConstant = 0.0;
    /** The sum the model was trained with in periodic cells (charge_head.coulomb.periodic, MACELES): the reciprocal
     *  sum of its Gaussian charges truncated at |k| <= 2 pi / dl over the les library's grid of k vectors, without
     *  a real-space part. 0: none declared. */
    double truncatedReciprocalSpacing = 0.0; // dl (length unit)
    bool hasTruncatedReciprocalSum() const { return truncatedReciprocalSpacing > 0; }
    /** k of the model's own Coulomb term over OpenMM's 1/(4 pi eps0) (1 for every model that does not declare its own). */
    double coulombConstantRatio() const;
    bool hasPolarHead = false;
    PolarSpec polar;

    /** Index of an atomic number in `elements`, or -1. */
    int elementIndex(int atomicNumber) const;
    int numElements() const { return static_cast<int>(elements.size()); }
    const std::vector<double>& w3j(int l1, int l2, int l3) const;
};

} // namespace OpenMMENN

#endif
