#ifndef ENN_COMPAT_LEPTON_PARSED_EXPRESSION_H_
#define ENN_COMPAT_LEPTON_PARSED_EXPRESSION_H_
// Declaration only: see CustomFunction.h in this folder for why it exists.
namespace Lepton {
class ParsedExpression;
}
#endif
