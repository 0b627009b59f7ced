#pragma once
// The parsed form of an expression: a flat vector of nodes addressed by index.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "zerohop/value.h"

namespace zerohop::expr::internal {

enum class Op : uint8_t {
    kConst, kAttr,
    kNeg, kBitNot, kNot,
    kAnd, kOr,
    kEq, kNe, kLt, kLe, kGt, kGe, kIn,
    kAdd, kSub, kMul, kDiv,
    kBitAnd, kBitOr, kBitXor, kShl, kShr,
    kIndex, kSlice,
    kCall,
};

enum class Func : uint8_t {
    kNone, kExists, kStarts, kEnds, kContains, kLength, kMin, kMax, kIfNotExists, kInitArray,
};

struct Node {
    Op op = Op::kConst;
    Func func = Func::kNone;
    uint32_t pos = 0;        // byte offset in the source, for messages
    uint32_t a = 0, b = 0, c = 0;  // children; for kConst a = constant index; for kAttr a/b = name span
    uint32_t first_arg = 0;  // kIn/kCall: arguments are args[first_arg .. first_arg + nargs)
    uint32_t nargs = 0;
};

// One statement of an update expression.
struct Statement {
    bool remove = false;
    uint32_t name_off = 0, name_len = 0;  // target attribute, as a span of `names`
    bool has_index = false;
    uint32_t index = 0;                   // node of the element index, when has_index
    uint32_t value = 0;                   // node of the value (SET only)
    uint32_t pos = 0;
};

struct Program {
    std::string text;            // the source, as given
    std::string names;           // attribute names, concatenated; nodes refer to spans of it
    std::vector<Node> nodes;
    std::vector<uint32_t> args;
    std::vector<Value> consts;
    uint32_t root = 0;           // conditions
    bool has_root = false;
    std::vector<Statement> statements;  // updates

    std::string_view Name(uint32_t off, uint32_t len) const { return std::string_view(names).substr(off, len); }
};

// What went wrong while evaluating, without allocating: a fixed message and a position.
struct EvalError {
    const char* what = nullptr;
    uint32_t pos = 0;
};

absl::Status ParseCondition(std::string_view text, Program* p);
absl::Status ParseUpdate(std::string_view text, Program* p);

}  // namespace zerohop::expr::internal
