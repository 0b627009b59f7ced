// Lexer and recursive-descent parser for conditions and updates.

#include <charconv>
#include <cstdlib>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "expr/expression.h"
#include "expr/internal/program.h"
#include "zerohop/object.h"

namespace zerohop::expr::internal {
namespace {

enum class Tok : uint8_t {
    kEnd, kIdent, kName /* backtick */, kInt, kDouble, kString,
    kLParen, kRParen, kLBracket, kRBracket, kComma, kSemicolon, kDotDot,
    kEqEq, kAssign, kNe, kLt, kLe, kGt, kGe,
    kPlus, kMinus, kStar, kSlash, kAmp, kPipe, kCaret, kShl, kShr, kTilde,
};

enum class Kw : uint8_t { kNone, kAnd, kOr, kNot, kIn, kSet, kRemove, kTrue, kFalse };

// Keywords are case-insensitive; classified once when the identifier is lexed.
Kw Classify(std::string_view w) {
    struct Entry {
        std::string_view text;
        Kw kw;
    };
    static constexpr Entry kKeywords[] = {{"and", Kw::kAnd}, {"or", Kw::kOr},         {"not", Kw::kNot},
                                          {"in", Kw::kIn},   {"set", Kw::kSet},       {"remove", Kw::kRemove},
                                          {"true", Kw::kTrue}, {"false", Kw::kFalse}};
    if (w.size() > 6) {
        return Kw::kNone;
    }
    for (const Entry& e : kKeywords) {
        if (e.text.size() == w.size() &&
            absl::EqualsIgnoreCase(absl::string_view(w.data(), w.size()), absl::string_view(e.text.data(), e.text.size()))) {
            return e.kw;
        }
    }
    return Kw::kNone;
}

struct Token {
    Tok kind = Tok::kEnd;
    Kw kw = Kw::kNone;
    uint32_t pos = 0;
    std::string_view text;  // the raw token
    std::string str;        // unescaped string literal
    int64_t i = 0;
    double d = 0;
};

bool IsIdentStart(char c) { return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }

std::string Describe(const Token& t) {
    if (t.kind == Tok::kEnd) {
        return "end of expression";
    }
    std::string_view shown = t.text.substr(0, 40);
    return absl::StrFormat("'%s'", shown);
}

class Parser {
public:
    Parser(std::string_view text, Program* p) : src_(text), p_(p) {}

    absl::Status ParseCondition() {
        ZH_RETURN_IF_ERROR(Start());
        if (tok_.kind == Tok::kEnd) {
            return absl::OkStatus();  // empty: matches everything
        }
        uint32_t root;
        if (!Expr(&root)) {
            return error_;
        }
        if (tok_.kind != Tok::kEnd) {
            Fail(tok_.pos, "an operator or the end of the expression");
            return error_;
        }
        p_->root = root;
        p_->has_root = true;
        return CheckHeight();
    }

    absl::Status ParseUpdate() {
        ZH_RETURN_IF_ERROR(Start());
        while (tok_.kind != Tok::kEnd) {
            if (tok_.kind == Tok::kSemicolon) {
                if (!Next()) {
                    return error_;
                }
                continue;
            }
            if (!Statement()) {
                return error_;
            }
            if (tok_.kind != Tok::kSemicolon && tok_.kind != Tok::kEnd) {
                Fail(tok_.pos, "';' between statements or the end of the expression");
                return error_;
            }
        }
        if (p_->statements.empty()) {
            return absl::InvalidArgumentError("update expression is empty: expected at least one assignment");
        }
        return CheckHeight();
    }

private:
    absl::Status Start() {
        if (src_.size() > kMaxExpressionBytes) {
            return absl::InvalidArgumentError(absl::StrFormat(
                "expression is %d bytes, the limit is %d", src_.size(), kMaxExpressionBytes));
        }
        p_->text.assign(src_.data(), src_.size());
        // A node per few bytes is typical: avoid regrowing the vectors while parsing.
        p_->nodes.reserve(src_.size() / 4 + 4);
        p_->consts.reserve(src_.size() / 16 + 2);
        if (!Next()) {
            return error_;
        }
        return absl::OkStatus();
    }

    // --- errors ---------------------------------------------------------------
    bool Fail(uint32_t pos, std::string_view expected) {
        if (error_.ok()) {
            std::string found = pos == tok_.pos ? Describe(tok_) : std::string();
            error_ = absl::InvalidArgumentError(absl::StrFormat(
                "bad expression at byte %d: expected %s%s%s", pos, expected, found.empty() ? "" : ", found ", found));
        }
        return false;
    }
    bool FailMsg(uint32_t pos, std::string msg) {
        if (error_.ok()) {
            error_ = absl::InvalidArgumentError(absl::StrFormat("bad expression at byte %d: %s", pos, msg));
        }
        return false;
    }
    // Consumes the closing bracket of the one opened at `open`; the message is built only on failure.
    bool ExpectClose(Tok kind, uint32_t open) {
        if (tok_.kind != kind) {
            return Fail(tok_.pos, kind == Tok::kRParen ? absl::StrFormat("')' to close '(' at byte %d", open)
                                                       : absl::StrFormat("']' to close '[' at byte %d", open));
        }
        return Next();
    }

    // --- lexer ----------------------------------------------------------------
    bool Next() {
        size_t i = pos_;
        while (i < src_.size() && absl::ascii_isspace(static_cast<unsigned char>(src_[i]))) {
            ++i;
        }
        tok_.kind = Tok::kEnd;
        tok_.kw = Kw::kNone;
        tok_.text = {};
        tok_.pos = static_cast<uint32_t>(i);
        if (i >= src_.size()) {
            tok_.kind = Tok::kEnd;
            pos_ = i;
            return true;
        }
        char c = src_[i];
        char n = i + 1 < src_.size() ? src_[i + 1] : '\0';
        auto single = [&](Tok k, size_t len) {
            tok_.kind = k;
            tok_.text = src_.substr(i, len);
            pos_ = i + len;
            return true;
        };
        if (IsIdentStart(c)) {
            size_t j = i + 1;
            while (j < src_.size() && IsIdentChar(src_[j])) {
                ++j;
            }
            single(Tok::kIdent, j - i);
            tok_.kw = Classify(tok_.text);
            return true;
        }
        if (absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
            (c == '.' && absl::ascii_isdigit(static_cast<unsigned char>(n)))) {
            return Number(i);
        }
        switch (c) {
            case '`': {
                size_t close = src_.find('`', i + 1);
                if (close == std::string_view::npos) {
                    return FailMsg(static_cast<uint32_t>(i), "unterminated backtick name");
                }
                if (close == i + 1) {
                    return FailMsg(static_cast<uint32_t>(i), "empty backtick name");
                }
                tok_.kind = Tok::kName;
                tok_.text = src_.substr(i, close + 1 - i);
                pos_ = close + 1;
                return true;
            }
            case '\'': return String(i);
            case '(': return single(Tok::kLParen, 1);
            case ')': return single(Tok::kRParen, 1);
            case '[': return single(Tok::kLBracket, 1);
            case ']': return single(Tok::kRBracket, 1);
            case ',': return single(Tok::kComma, 1);
            case ';': return single(Tok::kSemicolon, 1);
            case '+': return single(Tok::kPlus, 1);
            case '-': return single(Tok::kMinus, 1);
            case '*': return single(Tok::kStar, 1);
            case '/': return single(Tok::kSlash, 1);
            case '&': return single(Tok::kAmp, 1);
            case '|': return single(Tok::kPipe, 1);
            case '^': return single(Tok::kCaret, 1);
            case '~': return single(Tok::kTilde, 1);
            case '.':
                if (n == '.') {
                    return single(Tok::kDotDot, 2);
                }
                break;
            case '=': return n == '=' ? single(Tok::kEqEq, 2) : single(Tok::kAssign, 1);
            case '!':
                if (n == '=') {
                    return single(Tok::kNe, 2);
                }
                break;
            case '<':
                if (n == '=') {
                    return single(Tok::kLe, 2);
                }
                if (n == '<') {
                    return single(Tok::kShl, 2);
                }
                return single(Tok::kLt, 1);
            case '>':
                if (n == '=') {
                    return single(Tok::kGe, 2);
                }
                if (n == '>') {
                    return single(Tok::kShr, 2);
                }
                return single(Tok::kGt, 1);
            default: break;
        }
        std::string shown = absl::ascii_isprint(static_cast<unsigned char>(c))
                                ? absl::StrFormat("'%c'", c)
                                : absl::StrFormat("byte 0x%02x", static_cast<unsigned char>(c));
        return FailMsg(static_cast<uint32_t>(i), absl::StrFormat("unexpected character %s", shown));
    }

    bool Number(size_t i) {
        size_t j = i;
        bool is_double = false;
        while (j < src_.size() && absl::ascii_isdigit(static_cast<unsigned char>(src_[j]))) {
            ++j;
        }
        // "1..5" is a slice: the '.' belongs to '..', not to the number.
        if (j < src_.size() && src_[j] == '.' && !(j + 1 < src_.size() && src_[j + 1] == '.')) {
            is_double = true;
            ++j;
            while (j < src_.size() && absl::ascii_isdigit(static_cast<unsigned char>(src_[j]))) {
                ++j;
            }
        }
        if (j < src_.size() && (src_[j] == 'e' || src_[j] == 'E')) {
            size_t k = j + 1;
            if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) {
                ++k;
            }
            if (k < src_.size() && absl::ascii_isdigit(static_cast<unsigned char>(src_[k]))) {
                is_double = true;
                j = k;
                while (j < src_.size() && absl::ascii_isdigit(static_cast<unsigned char>(src_[j]))) {
                    ++j;
                }
            }
        }
        if (j < src_.size() && IsIdentChar(src_[j])) {
            return FailMsg(static_cast<uint32_t>(i), "malformed number");
        }
        tok_.text = src_.substr(i, j - i);
        const char* first = tok_.text.data();
        const char* last = first + tok_.text.size();
        if (is_double) {
            tok_.kind = Tok::kDouble;
            // from_chars does not take a leading '.', which the lexer allows (".5").
            std::string_view t = tok_.text;
            std::string padded;
            if (t[0] == '.') {
                padded = "0" + std::string(t);
                first = padded.data();
                last = first + padded.size();
            }
            auto r = std::from_chars(first, last, tok_.d);
            if (r.ec == std::errc::result_out_of_range) {
                return FailMsg(static_cast<uint32_t>(i), "number out of the double range");
            }
        } else {
            tok_.kind = Tok::kInt;
            uint64_t v = 0;
            auto r = std::from_chars(first, last, v);
            // 9223372036854775808 is allowed only to be negated; the parser checks that.
            if (r.ec == std::errc::result_out_of_range ||
                v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1) {
                return FailMsg(static_cast<uint32_t>(i), "integer literal out of the int64 range");
            }
            tok_.i = static_cast<int64_t>(v);
            big_int_ = v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
        }
        pos_ = j;
        return true;
    }

    bool String(size_t i) {
        std::string out;
        size_t j = i + 1;
        while (true) {
            if (j >= src_.size()) {
                return FailMsg(static_cast<uint32_t>(i), "unterminated string literal");
            }
            char c = src_[j];
            if (c == '\'') {
                break;
            }
            if (c != '\\') {
                out.push_back(c);
                ++j;
                continue;
            }
            if (j + 1 >= src_.size()) {
                return FailMsg(static_cast<uint32_t>(j), "unterminated escape in string literal");
            }
            char e = src_[j + 1];
            switch (e) {
                case '\'': out.push_back('\''); break;
                case '"': out.push_back('"'); break;
                case '\\': out.push_back('\\'); break;
                case 'n': out.push_back('\n'); break;
                case 't': out.push_back('\t'); break;
                case 'r': out.push_back('\r'); break;
                case '0': out.push_back('\0'); break;
                case 'x': {
                    if (j + 3 >= src_.size() || !absl::ascii_isxdigit(static_cast<unsigned char>(src_[j + 2])) ||
                        !absl::ascii_isxdigit(static_cast<unsigned char>(src_[j + 3]))) {
                        return FailMsg(static_cast<uint32_t>(j), "\\x needs two hex digits");
                    }
                    out.push_back(static_cast<char>(std::stoi(std::string(src_.substr(j + 2, 2)), nullptr, 16)));
                    j += 2;
                    break;
                }
                default:
                    return FailMsg(static_cast<uint32_t>(j),
                                   absl::StrFormat("unknown escape '\\%c' (use \\' \\\\ \\n \\t \\r \\0 \\xHH)", e));
            }
            j += 2;
        }
        tok_.kind = Tok::kString;
        tok_.text = src_.substr(i, j + 1 - i);
        tok_.str = std::move(out);
        pos_ = j + 1;
        return true;
    }

    bool IsKeyword(Kw kw) const { return tok_.kind == Tok::kIdent && tok_.kw == kw; }

    // --- tree building --------------------------------------------------------
    // Adds a node, tracking the height of the tree it tops: evaluation recurses that deep,
    // so a long chain of operators (a + a + ... + a) is as limited as deep parentheses.
    uint32_t Add(Node n) {
        uint32_t h = 0;
        auto child = [&](uint32_t i) { h = std::max(h, heights_[i]); };
        switch (n.op) {
            case Op::kConst:
            case Op::kAttr: break;
            case Op::kNeg:
            case Op::kBitNot:
            case Op::kNot: child(n.a); break;
            case Op::kSlice:
                child(n.a);
                child(n.b);
                child(n.c);
                break;
            case Op::kIn:
                child(n.a);
                [[fallthrough]];
            case Op::kCall:
                for (uint32_t i = 0; i < n.nargs; ++i) {
                    child(p_->args[n.first_arg + i]);
                }
                break;
            default:
                child(n.a);
                child(n.b);
                break;
        }
        heights_.push_back(h + 1);
        if (h + 1 > kMaxTreeHeight && too_deep_at_ < 0) {
            too_deep_at_ = static_cast<int64_t>(n.pos);
        }
        p_->nodes.push_back(n);
        return static_cast<uint32_t>(p_->nodes.size() - 1);
    }
    absl::Status CheckHeight() const {
        if (too_deep_at_ >= 0) {
            return absl::InvalidArgumentError(absl::StrFormat(
                "bad expression at byte %d: more than %d operators deep (split long chains of operators)",
                too_deep_at_, kMaxTreeHeight));
        }
        return absl::OkStatus();
    }
    uint32_t AddConst(Value v, uint32_t pos) {
        p_->consts.push_back(std::move(v));
        Node n;
        n.op = Op::kConst;
        n.pos = pos;
        n.a = static_cast<uint32_t>(p_->consts.size() - 1);
        return Add(n);
    }
    // The attribute name of an identifier or backtick token.
    std::pair<uint32_t, uint32_t> AddName() {
        std::string_view name = tok_.text;
        if (tok_.kind == Tok::kName) {
            name = name.substr(1, name.size() - 2);
        }
        uint32_t off = static_cast<uint32_t>(p_->names.size());
        p_->names.append(name.data(), name.size());
        return {off, static_cast<uint32_t>(name.size())};
    }
    uint32_t Binary(Op op, uint32_t pos, uint32_t a, uint32_t b) {
        Node n;
        n.op = op;
        n.pos = pos;
        n.a = a;
        n.b = b;
        return Add(n);
    }

    struct Depth {
        explicit Depth(Parser* p) : p(p) { ++p->depth_; }
        ~Depth() { --p->depth_; }
        Parser* p;
    };
    bool CheckDepth() {
        if (depth_ > kMaxNesting) {
            return FailMsg(tok_.pos, absl::StrFormat("expression nests deeper than %d levels", kMaxNesting));
        }
        return true;
    }

    // --- grammar --------------------------------------------------------------
    bool Expr(uint32_t* out) { return Or(out); }

    bool Or(uint32_t* out) {
        if (!And(out)) {
            return false;
        }
        while (IsKeyword(Kw::kOr)) {
            uint32_t pos = tok_.pos;
            uint32_t rhs;
            if (!Next() || !And(&rhs)) {
                return false;
            }
            *out = Binary(Op::kOr, pos, *out, rhs);
        }
        return true;
    }

    bool And(uint32_t* out) {
        if (!Not(out)) {
            return false;
        }
        while (IsKeyword(Kw::kAnd)) {
            uint32_t pos = tok_.pos;
            uint32_t rhs;
            if (!Next() || !Not(&rhs)) {
                return false;
            }
            *out = Binary(Op::kAnd, pos, *out, rhs);
        }
        return true;
    }

    bool Not(uint32_t* out) {
        Depth d(this);
        if (!CheckDepth()) {
            return false;
        }
        if (IsKeyword(Kw::kNot)) {
            uint32_t pos = tok_.pos;
            uint32_t operand;
            if (!Next() || !Not(&operand)) {
                return false;
            }
            *out = Binary(Op::kNot, pos, operand, 0);
            return true;
        }
        return Comparison(out);
    }

    bool Comparison(uint32_t* out) {
        if (!BitOr(out)) {
            return false;
        }
        Op op;
        switch (tok_.kind) {
            case Tok::kEqEq: op = Op::kEq; break;
            case Tok::kNe: op = Op::kNe; break;
            case Tok::kLt: op = Op::kLt; break;
            case Tok::kLe: op = Op::kLe; break;
            case Tok::kGt: op = Op::kGt; break;
            case Tok::kGe: op = Op::kGe; break;
            case Tok::kAssign:
                return FailMsg(tok_.pos, "'=' is assignment; compare with '=='");
            default:
                if (IsKeyword(Kw::kIn)) {
                    return In(out);
                }
                return true;
        }
        uint32_t pos = tok_.pos;
        uint32_t rhs;
        if (!Next() || !BitOr(&rhs)) {
            return false;
        }
        *out = Binary(op, pos, *out, rhs);
        return true;
    }

    bool In(uint32_t* out) {
        uint32_t pos = tok_.pos;
        if (!Next()) {
            return false;
        }
        if (tok_.kind != Tok::kLParen) {
            return Fail(tok_.pos, "'(' after IN");
        }
        std::vector<uint32_t> items;
        if (!ArgList(&items)) {
            return false;
        }
        if (items.empty()) {
            return FailMsg(pos, "IN needs at least one value");
        }
        Node n;
        n.op = Op::kIn;
        n.pos = pos;
        n.a = *out;
        n.first_arg = static_cast<uint32_t>(p_->args.size());
        n.nargs = static_cast<uint32_t>(items.size());
        p_->args.insert(p_->args.end(), items.begin(), items.end());
        *out = Add(n);
        return true;
    }

    // Parses "( expr, expr, ... )" with the current token at '('.
    bool ArgList(std::vector<uint32_t>* items) {
        uint32_t open = tok_.pos;
        if (!Next()) {
            return false;
        }
        if (tok_.kind == Tok::kRParen) {
            return Next();
        }
        while (true) {
            uint32_t e;
            if (!Expr(&e)) {
                return false;
            }
            items->push_back(e);
            if (tok_.kind == Tok::kComma) {
                if (!Next()) {
                    return false;
                }
                continue;
            }
            if (tok_.kind == Tok::kRParen) {
                return Next();
            }
            return Fail(tok_.pos, absl::StrFormat("',' or ')' to close '(' at byte %d", open));
        }
    }

    template <typename Level>
    bool LeftAssoc(uint32_t* out, Level next, std::initializer_list<std::pair<Tok, Op>> ops) {
        if (!(this->*next)(out)) {
            return false;
        }
        while (true) {
            const std::pair<Tok, Op>* match = nullptr;
            for (const auto& o : ops) {
                if (tok_.kind == o.first) {
                    match = &o;
                }
            }
            if (match == nullptr) {
                return true;
            }
            uint32_t pos = tok_.pos;
            uint32_t rhs;
            if (!Next() || !(this->*next)(&rhs)) {
                return false;
            }
            *out = Binary(match->second, pos, *out, rhs);
        }
    }

    bool BitOr(uint32_t* out) { return LeftAssoc(out, &Parser::BitXor, {{Tok::kPipe, Op::kBitOr}}); }
    bool BitXor(uint32_t* out) { return LeftAssoc(out, &Parser::BitAnd, {{Tok::kCaret, Op::kBitXor}}); }
    bool BitAnd(uint32_t* out) { return LeftAssoc(out, &Parser::Shift, {{Tok::kAmp, Op::kBitAnd}}); }
    bool Shift(uint32_t* out) {
        return LeftAssoc(out, &Parser::Additive, {{Tok::kShl, Op::kShl}, {Tok::kShr, Op::kShr}});
    }
    bool Additive(uint32_t* out) {
        return LeftAssoc(out, &Parser::Multiplicative, {{Tok::kPlus, Op::kAdd}, {Tok::kMinus, Op::kSub}});
    }
    bool Multiplicative(uint32_t* out) {
        return LeftAssoc(out, &Parser::Unary, {{Tok::kStar, Op::kMul}, {Tok::kSlash, Op::kDiv}});
    }

    bool Unary(uint32_t* out) {
        Depth d(this);
        if (!CheckDepth()) {
            return false;
        }
        if (tok_.kind == Tok::kMinus || tok_.kind == Tok::kTilde) {
            Op op = tok_.kind == Tok::kMinus ? Op::kNeg : Op::kBitNot;
            uint32_t pos = tok_.pos;
            if (!Next()) {
                return false;
            }
            // -9223372036854775808 is a literal, not the negation of an out-of-range one.
            if (op == Op::kNeg && tok_.kind == Tok::kInt && big_int_) {
                *out = AddConst(Value::Int64(std::numeric_limits<int64_t>::min()), pos);
                big_int_ = false;
                return Next() && Postfix(out);
            }
            uint32_t operand;
            if (!Unary(&operand)) {
                return false;
            }
            *out = Binary(op, pos, operand, 0);
            return true;
        }
        if (!Primary(out)) {
            return false;
        }
        return Postfix(out);
    }

    bool Postfix(uint32_t* out) {
        while (tok_.kind == Tok::kLBracket) {
            uint32_t pos = tok_.pos;
            uint32_t first;
            if (!Next() || !Expr(&first)) {
                return false;
            }
            if (tok_.kind == Tok::kDotDot) {
                uint32_t last;
                if (!Next() || !Expr(&last)) {
                    return false;
                }
                Node n;
                n.op = Op::kSlice;
                n.pos = pos;
                n.a = *out;
                n.b = first;
                n.c = last;
                *out = Add(n);
            } else {
                *out = Binary(Op::kIndex, pos, *out, first);
            }
            if (!ExpectClose(Tok::kRBracket, pos)) {
                return false;
            }
        }
        return true;
    }

    static Func LookupFunc(std::string_view name) {
        struct Entry {
            std::string_view name;
            Func f;
        };
        static constexpr Entry kFuncs[] = {
            {"exists", Func::kExists},     {"starts", Func::kStarts},
            {"ends", Func::kEnds},         {"contains", Func::kContains},
            {"length", Func::kLength},     {"min", Func::kMin},
            {"max", Func::kMax},           {"if_not_exists", Func::kIfNotExists},
            {"init_array", Func::kInitArray},
        };
        for (const Entry& e : kFuncs) {
            if (absl::EqualsIgnoreCase(absl::string_view(name.data(), name.size()),
                                       absl::string_view(e.name.data(), e.name.size()))) {
                return e.f;
            }
        }
        return Func::kNone;
    }

    bool Primary(uint32_t* out) {
        uint32_t pos = tok_.pos;
        switch (tok_.kind) {
            case Tok::kInt:
                if (big_int_) {
                    return FailMsg(pos, "integer literal out of the int64 range");
                }
                *out = AddConst(Value::Int64(tok_.i), pos);
                return Next();
            case Tok::kDouble:
                *out = AddConst(Value::Double(tok_.d), pos);
                return Next();
            case Tok::kString:
                *out = AddConst(Value::String(std::move(tok_.str)), pos);
                return Next();
            case Tok::kLParen: {
                if (!Next() || !Expr(out)) {
                    return false;
                }
                return ExpectClose(Tok::kRParen, pos);
            }
            case Tok::kName: {
                auto [off, len] = AddName();
                Node n;
                n.op = Op::kAttr;
                n.pos = pos;
                n.a = off;
                n.b = len;
                *out = Add(n);
                return Next();
            }
            case Tok::kIdent: break;
            default:
                return Fail(pos, "a value, an attribute name, a function call or '('");
        }
        if (IsKeyword(Kw::kTrue) || IsKeyword(Kw::kFalse)) {
            *out = AddConst(Value::Bool(IsKeyword(Kw::kTrue)), pos);
            return Next();
        }
        if (tok_.kw != Kw::kNone) {
            return Fail(pos, "a value, an attribute name, a function call or '('");
        }
        std::string_view ident = tok_.text;
        auto [off, len] = AddName();
        if (!Next()) {
            return false;
        }
        if (tok_.kind != Tok::kLParen) {
            Node n;
            n.op = Op::kAttr;
            n.pos = pos;
            n.a = off;
            n.b = len;
            *out = Add(n);
            return true;
        }
        p_->names.resize(off);  // a function name, not an attribute
        Func f = LookupFunc(ident);
        if (f == Func::kNone) {
            return FailMsg(pos, absl::StrFormat(
                                    "unknown function '%s' (known: exists, starts, ends, contains, length, min, "
                                    "max, if_not_exists, init_array)",
                                    ident));
        }
        std::vector<uint32_t> args;
        if (!ArgList(&args)) {
            return false;
        }
        if (!CheckArity(f, ident, pos, args)) {
            return false;
        }
        Node n;
        n.op = Op::kCall;
        n.func = f;
        n.pos = pos;
        n.first_arg = static_cast<uint32_t>(p_->args.size());
        n.nargs = static_cast<uint32_t>(args.size());
        p_->args.insert(p_->args.end(), args.begin(), args.end());
        *out = Add(n);
        return true;
    }

    bool CheckArity(Func f, std::string_view name, uint32_t pos, const std::vector<uint32_t>& args) {
        size_t lo = 2, hi = 2;
        switch (f) {
            case Func::kExists:
            case Func::kLength: lo = hi = 1; break;
            case Func::kMin:
            case Func::kMax: lo = 1; break;
            default: break;
        }
        if (args.size() < lo || args.size() > hi) {
            return FailMsg(pos, absl::StrFormat("%s() takes %s argument%s, got %d", name,
                                                lo == hi ? absl::StrFormat("%d", lo) : "1 or 2", hi == 1 ? "" : "s",
                                                args.size()));
        }
        if ((f == Func::kExists || f == Func::kIfNotExists) && p_->nodes[args[0]].op != Op::kAttr) {
            return FailMsg(p_->nodes[args[0]].pos,
                           absl::StrFormat("the first argument of %s() must be an attribute name", name));
        }
        if (f == Func::kInitArray) {
            const Node& type = p_->nodes[args[1]];
            if (type.op != Op::kConst || p_->consts[type.a].type() != ValueType::kString ||
                (p_->consts[type.a].as_string() != "int" && p_->consts[type.a].as_string() != "double")) {
                return FailMsg(type.pos, "the second argument of init_array() must be 'int' or 'double'");
            }
        }
        return true;
    }

    // target: name or name[expr]
    bool Target(::zerohop::expr::internal::Statement* st) {
        if (tok_.kind != Tok::kIdent && tok_.kind != Tok::kName) {
            return Fail(tok_.pos, "an attribute name");
        }
        st->pos = tok_.pos;
        std::string_view shown = tok_.text;
        auto [off, len] = AddName();
        st->name_off = off;
        st->name_len = len;
        std::string_view name = p_->Name(off, len);
        if (IsSystemAttributeName(name)) {
            return FailMsg(st->pos, absl::StrFormat("'%s' is a read-only system attribute", shown));
        }
        if (absl::Status s = ValidateAttributeName(name); !s.ok()) {
            return FailMsg(st->pos, std::string(s.message()));
        }
        if (!Next()) {
            return false;
        }
        if (tok_.kind == Tok::kLBracket) {
            uint32_t open = tok_.pos;
            st->has_index = true;
            if (!Next() || !Expr(&st->index)) {
                return false;
            }
            if (!ExpectClose(Tok::kRBracket, open)) {
                return false;
            }
        }
        return true;
    }

    bool Statement() {
        if (IsKeyword(Kw::kRemove)) {
            if (!Next()) {
                return false;
            }
            while (true) {
                ::zerohop::expr::internal::Statement st;
                st.remove = true;
                if (!Target(&st)) {
                    return false;
                }
                if (st.has_index) {
                    return FailMsg(st.pos, "REMOVE takes whole attributes, not array elements");
                }
                p_->statements.push_back(st);
                if (tok_.kind != Tok::kComma) {
                    return true;
                }
                if (!Next()) {
                    return false;
                }
            }
        }
        if (IsKeyword(Kw::kSet)) {
            if (!Next()) {
                return false;
            }
        }
        while (true) {
            ::zerohop::expr::internal::Statement st;
            if (!Target(&st)) {
                return false;
            }
            if (tok_.kind != Tok::kAssign) {
                return Fail(tok_.pos, "'=' after the attribute name");
            }
            if (!Next() || !Expr(&st.value)) {
                return false;
            }
            p_->statements.push_back(st);
            if (tok_.kind != Tok::kComma) {
                return true;
            }
            if (!Next()) {
                return false;
            }
        }
    }

    std::string_view src_;
    Program* p_;
    std::vector<uint32_t> heights_;  // per node
    int64_t too_deep_at_ = -1;
    size_t pos_ = 0;
    Token tok_;
    bool big_int_ = false;
    int depth_ = 0;
    absl::Status error_;
};

}  // namespace

absl::Status ParseCondition(std::string_view text, Program* p) { return Parser(text, p).ParseCondition(); }
absl::Status ParseUpdate(std::string_view text, Program* p) { return Parser(text, p).ParseUpdate(); }

}  // namespace zerohop::expr::internal
