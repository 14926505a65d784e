#ifndef ENN_COMPAT_LEPTON_CUSTOM_FUNCTION_H_
#define ENN_COMPAT_LEPTON_CUSTOM_FUNCTION_H_
// Debian's libopenmm-dev ships OpenMM's common headers without lepton/, which
// openmm/common/ExpressionUtilities.h includes. Only this interface is needed to compile against
// those headers (our plugin evaluates no Lepton expressions); it mirrors Lepton's public API.
// CMake puts this folder on the include path only when the real headers are absent.
namespace Lepton {
class CustomFunction {
public:
    virtual ~CustomFunction() {}
    virtual int getNumArguments() const = 0;
    virtual double evaluate(const double* arguments) const = 0;
    virtual double evaluateDerivative(const double* arguments, const int* derivOrder) const = 0;
    virtual CustomFunction* clone() const = 0;
};
} // namespace Lepton
#endif
