/* An ENNForce added to a System built with OpenMM's own C API (built only where OpenMM ships OpenMMCWrapper.h). */
#include "OpenMMCWrapper.h"
#include "OpenMMENNCWrapper.h"
#include <stdio.h>

int main(int argc, char** argv) {
    if (argc < 2)
        return 2;
    OpenMM_Platform_loadPluginsFromDirectory(OpenMM_Platform_getDefaultPluginsDirectory());
    OpenMM_System* system = OpenMM_System_create();
    OpenMM_ENNForce* force = NULL;
    if (OpenMM_ENNForce_create(argv[1], &force) != OpenMM_ENN_Success) {
        fprintf(stderr, "%s\n", OpenMM_ENN_getLastErrorMessage());
        return 1;
    }
    const int z[3] = {8, 1, 1};
    for (int i = 0; i < 3; i++)
        OpenMM_ENNForce_addParticle(force, OpenMM_System_addParticle(system, 1.0), z[i], NULL);
    OpenMM_System_addForce(system, (OpenMM_Force*) force); /* the System owns it now */
    OpenMM_VerletIntegrator* integrator = OpenMM_VerletIntegrator_create(0.001);
    OpenMM_Context* context = OpenMM_Context_create_2(system, (OpenMM_Integrator*) integrator, OpenMM_Platform_getPlatformByName("Reference"));
    OpenMM_Vec3Array* positions = OpenMM_Vec3Array_create(3);
    OpenMM_Vec3 x[3] = {{0, 0, 0}, {0.0957, 0, 0}, {-0.0240, 0.0927, 0}};
    for (int i = 0; i < 3; i++)
        OpenMM_Vec3Array_set(positions, i, x[i]);
    OpenMM_Context_setPositions(context, positions);
    OpenMM_State* state = OpenMM_Context_getState(context, OpenMM_State_Energy, 0);
    printf("energy %.6f kJ/mol\n", OpenMM_State_getPotentialEnergy(state));
    OpenMM_State_destroy(state);
    OpenMM_Vec3Array_destroy(positions);
    OpenMM_Context_destroy(context);
    OpenMM_VerletIntegrator_destroy(integrator);
    OpenMM_System_destroy(system);
    return 0;
}
