/*
 * openmm-enn from C (C99): a water molecule with the shipped model, through the standalone evaluator.
 *
 *   cc -std=c99 enn_c_example.c -DENN_C_EXAMPLE_MAIN -lOpenMMENNC -o enn_c_example
 *   ./enn_c_example models/hcno-xtb-small.enn [Reference|CPU]
 *
 * docs/c-api.md walks through it. The test suite also calls enn_c_example() from C++ (tests/TestCAPI.cpp) and
 * compares its results with the C++ API's.
 */
#include "OpenMMENNCWrapper.h"
#include <stdio.h>

/* Water (nm): O, H, H. */
static const int WATER_Z[3] = {8, 1, 1};
static const double WATER_X[9] = {0.0, 0.0, 0.0, 0.0957, 0.0, 0.0, -0.0240, 0.0927, 0.0};

/** Energy (kJ/mol), forces (kJ/mol/nm, 9 values) and charges (e, 3 values) of water on `platform`; 0 on success. */
int enn_c_example(const char* model, const char* platform, double* energy, double* forces, double* charges) {
    OpenMM_ENNEvaluator* evaluator = NULL;
    const char* names[1] = {"Threads"};
    const char* values[1] = {"1"};
    const int numProperties = platform != NULL && platform[0] == 'C' ? 1 : 0; /* Threads is a CPU property */
    if (OpenMM_ENNEvaluator_create(model, 3, WATER_Z, 0.0, 0, platform, numProperties, names, values, OpenMM_ENN_OpenMMUnits,
                                   &evaluator) != OpenMM_ENN_Success) {
        fprintf(stderr, "creating the evaluator failed: %s\n", OpenMM_ENN_getLastErrorMessage());
        return 1;
    }
    int result = 0;
    if (OpenMM_ENNEvaluator_compute(evaluator, WATER_X, NULL, energy, forces, charges) != OpenMM_ENN_Success) {
        fprintf(stderr, "evaluating failed: %s\n", OpenMM_ENN_getLastErrorMessage());
        result = 1;
    }
    OpenMM_ENNEvaluator_destroy(evaluator);
    return result;
}

#ifdef ENN_C_EXAMPLE_MAIN
int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.enn [PLATFORM]\n", argv[0]);
        return 2;
    }
    double energy, forces[9], charges[3];
    if (enn_c_example(argv[1], argc > 2 ? argv[2] : "CPU", &energy, forces, charges) != 0)
        return 1;
    printf("energy %.6f kJ/mol\n", energy);
    for (int i = 0; i < 3; i++)
        printf("atom %d (Z=%d): force %10.4f %10.4f %10.4f kJ/mol/nm, charge %+.4f e\n", i, WATER_Z[i], forces[3 * i], forces[3 * i + 1],
               forces[3 * i + 2], charges[i]);
    return 0;
}
#endif
