#include "expr/expression.h"

#include <deque>
#include <limits>

#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "expr/internal/program.h"

namespace zerohop::expr {

using internal::EvalError;
using internal::Func;
using internal::Node;
using internal::Op;
using internal::Program;

std::optional<ValueView> MapAttributes::Find(std::string_view name) const {
    if (IsSystemAttributeName(name)) {
        return info_ != nullptr ? SystemAttribute(name, name_, *info_) : std::nullopt;
    }
    if (attrs_ == nullptr) {
        return std::nullopt;
    }
    auto it = attrs_->find(absl::string_view(name.data(), name.size()));
    if (it == attrs_->end()) {
        return std::nullopt;
    }
    return it->second.view();
}

std::optional<ValueView> EncodedItemAttributes::Find(std::string_view name) const {
    if (IsSystemAttributeName(name)) {
        return info_ != nullptr ? SystemAttribute(name, name_, *info_) : std::nullopt;
    }
    return attrs_.Find(name);
}

namespace {

enum class Order { kLess, kEqual, kGreater, kUnequal /* == and != only */, kIncomparable };

template <typename T>
Order Three(T a, T b) {
    return a < b ? Order::kLess : (b < a ? Order::kGreater : Order::kEqual);
}

Order Compare(ValueView a, ValueView b) {
    if (a.is_numeric() && b.is_numeric()) {
        if (a.type() == ValueType::kInt64 && b.type() == ValueType::kInt64) {
            return Three(a.as_int64(), b.as_int64());
        }
        double x = a.as_number(), y = b.as_number();
        if (x != x || y != y) {
            return Order::kIncomparable;  // NaN
        }
        return Three(x, y);
    }
    if (a.type() != b.type()) {
        return Order::kIncomparable;
    }
    switch (a.type()) {
        case ValueType::kString:
        case ValueType::kBlob: {
            int c = a.as_bytes().compare(b.as_bytes());
            return c < 0 ? Order::kLess : (c > 0 ? Order::kGreater : Order::kEqual);
        }
        case ValueType::kTimestamp: return Three(a.as_timestamp(), b.as_timestamp());
        case ValueType::kBool:
        case ValueType::kInt64Array:
        case ValueType::kDoubleArray: return a == b ? Order::kEqual : Order::kUnequal;
        default: return Order::kIncomparable;
    }
}

bool IsTrue(const std::optional<ValueView>& v) { return v && v->type() == ValueType::kBool && v->as_bool(); }

class Evaluator {
public:
    Evaluator(const Program& p, const AttributeSource& src) : p_(p), src_(src) {}

    std::optional<ValueView> Eval(uint32_t index) {
        const Node& n = p_.nodes[index];
        switch (n.op) {
            case Op::kConst: return p_.consts[n.a].view();
            case Op::kAttr: {
                std::optional<ValueView> v = src_.Find(p_.Name(n.a, n.b));
                if (!v && first_missing_ == nullptr) {
                    first_missing_ = &n;
                }
                return v;
            }
            case Op::kNot: return ValueView::Bool(!IsTrue(Eval(n.a)));
            case Op::kAnd: return ValueView::Bool(IsTrue(Eval(n.a)) && IsTrue(Eval(n.b)));
            case Op::kOr: return ValueView::Bool(IsTrue(Eval(n.a)) || IsTrue(Eval(n.b)));
            case Op::kEq:
            case Op::kNe:
            case Op::kLt:
            case Op::kLe:
            case Op::kGt:
            case Op::kGe: return ValueView::Bool(Comparison(n));
            case Op::kIn: {
                std::optional<ValueView> x = Eval(n.a);
                if (!x) {
                    return ValueView::Bool(false);
                }
                for (uint32_t i = 0; i < n.nargs; ++i) {
                    std::optional<ValueView> y = Eval(p_.args[n.first_arg + i]);
                    if (y && Compare(*x, *y) == Order::kEqual) {
                        return ValueView::Bool(true);
                    }
                }
                return ValueView::Bool(false);
            }
            case Op::kNeg: {
                std::optional<ValueView> x = Eval(n.a);
                if (!x) {
                    return std::nullopt;
                }
                if (x->type() == ValueType::kInt64) {
                    return ValueView::Int64(static_cast<int64_t>(0 - static_cast<uint64_t>(x->as_int64())));
                }
                if (x->type() == ValueType::kDouble) {
                    return ValueView::Double(-x->as_double());
                }
                return Error(n, "unary '-' needs a number");
            }
            case Op::kBitNot: {
                std::optional<ValueView> x = Eval(n.a);
                if (!x) {
                    return std::nullopt;
                }
                if (x->type() != ValueType::kInt64) {
                    return Error(n, "'~' needs an int64");
                }
                return ValueView::Int64(~x->as_int64());
            }
            case Op::kAdd:
            case Op::kSub:
            case Op::kMul:
            case Op::kDiv: return Arithmetic(n);
            case Op::kBitAnd:
            case Op::kBitOr:
            case Op::kBitXor:
            case Op::kShl:
            case Op::kShr: return Bitwise(n);
            case Op::kIndex: return Index(n);
            case Op::kSlice: return Slice(n);
            case Op::kCall: return Call(n);
        }
        return std::nullopt;
    }

    // Reads an array element index; false (with error set) if it is not an int64.
    bool IndexValue(uint32_t node, int64_t* out) {
        std::optional<ValueView> i = Eval(node);
        if (!i) {
            return false;
        }
        if (i->type() != ValueType::kInt64) {
            Error(p_.nodes[node], "an array index must be an int64");
            return false;
        }
        *out = i->as_int64();
        return true;
    }

    EvalError error;
    // The first attribute read that did not exist, to explain an undefined result.
    const Node* first_missing() const { return first_missing_; }

private:
    std::nullopt_t Error(const Node& n, const char* what) {
        if (error.what == nullptr) {
            error.what = what;
            error.pos = n.pos;
        }
        return std::nullopt;
    }

    bool Comparison(const Node& n) {
        std::optional<ValueView> a = Eval(n.a);
        std::optional<ValueView> b = Eval(n.b);
        if (!a || !b) {
            return false;
        }
        Order o = Compare(*a, *b);
        switch (n.op) {
            case Op::kEq: return o == Order::kEqual;
            case Op::kNe: return o == Order::kLess || o == Order::kGreater || o == Order::kUnequal;
            case Op::kLt: return o == Order::kLess;
            case Op::kLe: return o == Order::kLess || o == Order::kEqual;
            case Op::kGt: return o == Order::kGreater;
            case Op::kGe: return o == Order::kGreater || o == Order::kEqual;
            default: return false;
        }
    }

    std::optional<ValueView> Arithmetic(const Node& n) {
        std::optional<ValueView> a = Eval(n.a);
        std::optional<ValueView> b = Eval(n.b);
        if (!a || !b) {
            return std::nullopt;
        }
        if (!a->is_numeric() || !b->is_numeric()) {
            return Error(n, "arithmetic needs numbers (int64 or double)");
        }
        if (a->type() == ValueType::kInt64 && b->type() == ValueType::kInt64) {
            uint64_t x = static_cast<uint64_t>(a->as_int64()), y = static_cast<uint64_t>(b->as_int64());
            switch (n.op) {
                case Op::kAdd: return ValueView::Int64(static_cast<int64_t>(x + y));
                case Op::kSub: return ValueView::Int64(static_cast<int64_t>(x - y));
                case Op::kMul: return ValueView::Int64(static_cast<int64_t>(x * y));
                default: {
                    int64_t p = a->as_int64(), q = b->as_int64();
                    if (q == 0) {
                        return Error(n, "division by zero");
                    }
                    if (p == std::numeric_limits<int64_t>::min() && q == -1) {
                        return ValueView::Int64(p);  // wraps, like the other int64 operators
                    }
                    return ValueView::Int64(p / q);
                }
            }
        }
        double x = a->as_number(), y = b->as_number();
        switch (n.op) {
            case Op::kAdd: return ValueView::Double(x + y);
            case Op::kSub: return ValueView::Double(x - y);
            case Op::kMul: return ValueView::Double(x * y);
            default:
                if (y == 0) {
                    return Error(n, "division by zero");
                }
                return ValueView::Double(x / y);
        }
    }

    std::optional<ValueView> Bitwise(const Node& n) {
        std::optional<ValueView> a = Eval(n.a);
        std::optional<ValueView> b = Eval(n.b);
        if (!a || !b) {
            return std::nullopt;
        }
        if (a->type() != ValueType::kInt64 || b->type() != ValueType::kInt64) {
            return Error(n, "bit operators need int64 operands");
        }
        int64_t x = a->as_int64(), y = b->as_int64();
        switch (n.op) {
            case Op::kBitAnd: return ValueView::Int64(x & y);
            case Op::kBitOr: return ValueView::Int64(x | y);
            case Op::kBitXor: return ValueView::Int64(x ^ y);
            default:
                if (y < 0 || y > 63) {
                    return Error(n, "shift count must be 0..63");
                }
                if (n.op == Op::kShl) {
                    return ValueView::Int64(static_cast<int64_t>(static_cast<uint64_t>(x) << y));
                }
                return ValueView::Int64(x >> y);
        }
    }

    std::optional<ValueView> Index(const Node& n) {
        std::optional<ValueView> a = Eval(n.a);
        int64_t i;
        if (!a || !IndexValue(n.b, &i)) {
            return std::nullopt;
        }
        if (!a->is_array()) {
            return Error(n, "'[i]' needs an array");
        }
        if (i < 0 || static_cast<uint64_t>(i) >= a->array_size()) {
            return std::nullopt;  // out of range reads as missing
        }
        return a->type() == ValueType::kInt64Array ? ValueView::Int64(a->Int64At(i)) : ValueView::Double(a->DoubleAt(i));
    }

    std::optional<ValueView> Slice(const Node& n) {
        std::optional<ValueView> a = Eval(n.a);
        int64_t i, j;
        if (!a || !IndexValue(n.b, &i) || !IndexValue(n.c, &j)) {
            return std::nullopt;
        }
        if (!a->is_array()) {
            return Error(n, "'[i..j]' needs an array");
        }
        i = std::max<int64_t>(i, 0);
        if (j < i) {
            return a->ArraySlice(0, 0);
        }
        uint64_t end = j == std::numeric_limits<int64_t>::max() ? static_cast<uint64_t>(j) : static_cast<uint64_t>(j) + 1;
        return a->ArraySlice(static_cast<size_t>(i), static_cast<size_t>(std::min<uint64_t>(end, a->array_size())));
    }

    std::optional<ValueView> Arg(const Node& n, uint32_t i) { return Eval(p_.args[n.first_arg + i]); }

    std::optional<ValueView> Call(const Node& n) {
        switch (n.func) {
            case Func::kExists: {
                const Node& attr = p_.nodes[p_.args[n.first_arg]];
                return ValueView::Bool(src_.Find(p_.Name(attr.a, attr.b)).has_value());
            }
            case Func::kIfNotExists: {
                const Node& attr = p_.nodes[p_.args[n.first_arg]];
                std::optional<ValueView> v = src_.Find(p_.Name(attr.a, attr.b));
                return v ? v : Arg(n, 1);
            }
            case Func::kStarts:
            case Func::kEnds:
            case Func::kContains: {
                std::optional<ValueView> s = Arg(n, 0), x = Arg(n, 1);
                if (!s || !x) {
                    return std::nullopt;
                }
                bool bytes = s->type() == ValueType::kString || s->type() == ValueType::kBlob;
                if (!bytes || s->type() != x->type()) {
                    return Error(n, "starts/ends/contains need two strings (or two blobs)");
                }
                std::string_view hay = s->as_bytes(), needle = x->as_bytes();
                bool r = n.func == Func::kStarts ? hay.substr(0, needle.size()) == needle
                         : n.func == Func::kEnds
                             ? hay.size() >= needle.size() && hay.substr(hay.size() - needle.size()) == needle
                             : hay.find(needle) != std::string_view::npos;
                return ValueView::Bool(r);
            }
            case Func::kLength: {
                std::optional<ValueView> x = Arg(n, 0);
                if (!x) {
                    return std::nullopt;
                }
                if (x->type() == ValueType::kString || x->type() == ValueType::kBlob) {
                    return ValueView::Int64(static_cast<int64_t>(x->as_bytes().size()));
                }
                if (x->is_array()) {
                    return ValueView::Int64(static_cast<int64_t>(x->array_size()));
                }
                return Error(n, "length() needs a string, a blob or an array");
            }
            case Func::kMin:
            case Func::kMax: return MinMax(n);
            case Func::kInitArray: return InitArray(n);
            case Func::kNone: break;
        }
        return std::nullopt;
    }

    std::optional<ValueView> MinMax(const Node& n) {
        bool want_min = n.func == Func::kMin;
        if (n.nargs == 1) {
            std::optional<ValueView> a = Arg(n, 0);
            if (!a) {
                return std::nullopt;
            }
            if (!a->is_array()) {
                return Error(n, "min/max of one argument needs an array");
            }
            if (a->array_size() == 0) {
                return std::nullopt;
            }
            if (a->type() == ValueType::kInt64Array) {
                int64_t best = a->Int64At(0);
                for (size_t i = 1; i < a->array_size(); ++i) {
                    int64_t v = a->Int64At(i);
                    best = want_min ? std::min(best, v) : std::max(best, v);
                }
                return ValueView::Int64(best);
            }
            double best = a->DoubleAt(0);
            for (size_t i = 1; i < a->array_size(); ++i) {
                double v = a->DoubleAt(i);
                best = want_min ? std::min(best, v) : std::max(best, v);
            }
            return ValueView::Double(best);
        }
        std::optional<ValueView> a = Arg(n, 0), b = Arg(n, 1);
        if (!a || !b) {
            return std::nullopt;
        }
        Order o = Compare(*a, *b);
        if (o == Order::kIncomparable || o == Order::kUnequal) {
            return Error(n, "min/max need two comparable values");
        }
        ValueView pick = (o == Order::kLess) == want_min ? *a : *b;
        if (o == Order::kEqual) {
            pick = *a;
        }
        // Mixed int64/double yields a double, as arithmetic does.
        if (a->is_numeric() && b->is_numeric() && a->type() != b->type()) {
            return ValueView::Double(pick.as_number());
        }
        return pick;
    }

    std::optional<ValueView> InitArray(const Node& n) {
        std::optional<ValueView> count = Arg(n, 0);
        if (!count) {
            return std::nullopt;
        }
        if (count->type() != ValueType::kInt64 || count->as_int64() < 0 || count->as_int64() > kMaxInitArray) {
            return Error(n, "init_array() size must be an int64 in 0..1048576");
        }
        const Node& type = p_.nodes[p_.args[n.first_arg + 1]];
        bool is_int = p_.consts[type.a].as_string() == "int";
        if (!scratch_) {
            scratch_.emplace();
        }
        scratch_->emplace_back(static_cast<size_t>(count->as_int64()) * 8, '\0');
        const char* data = scratch_->back().data();
        size_t len = static_cast<size_t>(count->as_int64());
        return is_int ? ValueView::Int64Array(data, len) : ValueView::DoubleArray(data, len);
    }

    const Program& p_;
    const AttributeSource& src_;
    // Backing store for arrays made by init_array(); created only when one is.
    std::optional<std::deque<std::string>> scratch_;
    const Node* first_missing_ = nullptr;
};

}  // namespace

Condition::Condition() : program_(std::make_unique<Program>()) {}
Condition::~Condition() = default;
Condition::Condition(Condition&&) noexcept = default;
Condition& Condition::operator=(Condition&&) noexcept = default;

absl::StatusOr<Condition> Condition::Parse(std::string_view text) {
    Condition c;
    ZH_RETURN_IF_ERROR(internal::ParseCondition(text, c.program_.get()));
    return c;
}

bool Condition::empty() const { return !program_->has_root; }
const std::string& Condition::text() const { return program_->text; }

bool Condition::Matches(const AttributeSource& item) const {
    if (!program_->has_root) {
        return true;
    }
    Evaluator ev(*program_, item);
    return IsTrue(ev.Eval(program_->root));
}

Update::Update() : program_(std::make_unique<Program>()) {}
Update::~Update() = default;
Update::Update(Update&&) noexcept = default;
Update& Update::operator=(Update&&) noexcept = default;

absl::StatusOr<Update> Update::Parse(std::string_view text) {
    Update u;
    ZH_RETURN_IF_ERROR(internal::ParseUpdate(text, u.program_.get()));
    return u;
}

const std::string& Update::text() const { return program_->text; }

absl::Status Update::Apply(AttributeMap* attrs, std::string_view name, const ObjectInfo* info) const {
    const Program& p = *program_;
    for (const internal::Statement& st : p.statements) {
        std::string_view target = p.Name(st.name_off, st.name_len);
        absl::string_view key(target.data(), target.size());
        if (st.remove) {
            attrs->erase(key);
            continue;
        }
        MapAttributes src(attrs, name, info);
        Evaluator ev(p, src);
        std::optional<ValueView> v = ev.Eval(st.value);
        int64_t index = 0;
        if (v && st.has_index) {
            ev.IndexValue(st.index, &index);
        }
        if (ev.error.what != nullptr) {
            return absl::InvalidArgumentError(
                absl::StrFormat("update expression at byte %d: %s", ev.error.pos, ev.error.what));
        }
        if (!v) {
            if (const Node* missing = ev.first_missing()) {
                return absl::InvalidArgumentError(absl::StrFormat(
                    "update expression at byte %d: attribute '%s' does not exist, so '%s' has no value to assign "
                    "(use if_not_exists(name, default))",
                    missing->pos, p.Name(missing->a, missing->b), target));
            }
            return absl::InvalidArgumentError(absl::StrFormat(
                "update expression at byte %d: the value assigned to '%s' is undefined (an array index is out of "
                "range or an array is empty)",
                p.nodes[st.value].pos, target));
        }
        Value owned = v->ToValue();  // copy before the map changes under the view
        if (!st.has_index) {
            attrs->insert_or_assign(std::string(target), std::move(owned));
            continue;
        }
        auto it = attrs->find(key);
        if (it == attrs->end() || (it->second.type() != ValueType::kInt64Array &&
                                   it->second.type() != ValueType::kDoubleArray)) {
            return absl::InvalidArgumentError(absl::StrFormat(
                "update expression at byte %d: '%s' is not an array (create it with init_array(n, 'int'))", st.pos,
                target));
        }
        size_t size = it->second.type() == ValueType::kInt64Array ? it->second.as_int64_array().size()
                                                                   : it->second.as_double_array().size();
        if (index < 0 || static_cast<uint64_t>(index) >= size) {
            return absl::InvalidArgumentError(absl::StrFormat(
                "update expression at byte %d: index %d is out of range for '%s' of %d elements", st.pos, index,
                target, size));
        }
        if (auto* ints = it->second.mutable_int64_array()) {
            if (owned.type() != ValueType::kInt64) {
                return absl::InvalidArgumentError(absl::StrFormat(
                    "update expression at byte %d: an element of int64 array '%s' must be an int64, got %s", st.pos,
                    target, ValueTypeName(owned.type())));
            }
            (*ints)[index] = owned.as_int64();
        } else {
            if (!owned.view().is_numeric()) {
                return absl::InvalidArgumentError(absl::StrFormat(
                    "update expression at byte %d: an element of double array '%s' must be a number, got %s", st.pos,
                    target, ValueTypeName(owned.type())));
            }
            (*it->second.mutable_double_array())[index] = owned.view().as_number();
        }
    }
    return absl::OkStatus();
}

}  // namespace zerohop::expr
