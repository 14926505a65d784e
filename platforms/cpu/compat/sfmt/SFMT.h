// Debian's libopenmm-dev ships CpuPlatform.h, whose CpuRandom.h includes "sfmt/SFMT.h" without
// shipping it. CpuRandom only holds pointers to this class, so a declaration is all we need.
#ifndef ENN_COMPAT_SFMT_H_
#define ENN_COMPAT_SFMT_H_
namespace OpenMM_SFMT {
class SFMT;
}
#endif
