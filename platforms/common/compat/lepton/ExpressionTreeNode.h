#ifndef ENN_COMPAT_LEPTON_EXPRESSION_TREE_NODE_H_
#define ENN_COMPAT_LEPTON_EXPRESSION_TREE_NODE_H_
// Declaration only: see CustomFunction.h in this folder for why it exists.
namespace Lepton {
class ExpressionTreeNode;
}
#endif
