// The expression language (docs/EXPRESSIONS.md): conditions, filters and updates.

#include <atomic>
#include <cstdlib>
#include <new>

#include <gtest/gtest.h>

#include "expr/expression.h"

// Counts heap allocations made while `g_counting` is set, to hold the evaluator to its
// promise of not allocating.
static std::atomic<bool> g_counting{false};
static std::atomic<long> g_allocations{0};

void* operator new(std::size_t n) {
    if (g_counting.load(std::memory_order_relaxed)) {
        g_allocations.fetch_add(1, std::memory_order_relaxed);
    }
    if (void* p = std::malloc(n == 0 ? 1 : n)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace zerohop::expr {
namespace {

class ExpressionTest : public ::testing::Test {
protected:
    ExpressionTest() {
        attrs_["bugs"] = Value::Int64(10);
        attrs_["Product_Name"] = Value::String("Car-X");
        attrs_["age"] = Value::Int64(40);
        attrs_["State"] = Value::String("NY");
        attrs_["price"] = Value::Double(9.5);
        attrs_["flag"] = Value::Bool(true);
        attrs_["arr"] = Value::Int64Array({5, 6, 7, 8});
        attrs_["darr"] = Value::DoubleArray({1.5, -2.5});
        attrs_["my attr"] = Value::String("spaced");
        attrs_["blob"] = Value::Blob("\x01\x02");
        attrs_["when"] = Value::Time(Timestamp{100, 5});
        info_.size = 1234;
        info_.mtime = Timestamp{100, 7};
    }

    bool Match(std::string_view text) {
        auto c = Condition::Parse(text);
        EXPECT_TRUE(c.ok()) << text << ": " << c.status();
        if (!c.ok()) {
            return false;
        }
        MapAttributes item(&attrs_, "item1", &info_);
        return c->Matches(item);
    }

    absl::Status ParseError(std::string_view text) { return Condition::Parse(text).status(); }

    AttributeMap attrs_;
    ObjectInfo info_;
};

TEST_F(ExpressionTest, DesignExamples) {
    EXPECT_TRUE(Match("(bugs < 15) AND starts(Product_Name, 'Car')"));
    EXPECT_TRUE(Match("NOT exists(_enc) OR (_enc == '1')"));
    EXPECT_TRUE(Match("age == 40 AND NOT(State IN ('AZ','MA'))"));
    attrs_["State"] = Value::String("MA");
    EXPECT_FALSE(Match("age == 40 AND NOT(State IN ('AZ','MA'))"));
}

TEST_F(ExpressionTest, EmptyConditionMatchesEverything) {
    EXPECT_TRUE(Match(""));
    EXPECT_TRUE(Match("   "));
}

TEST_F(ExpressionTest, ComparisonOperators) {
    EXPECT_TRUE(Match("bugs == 10"));
    EXPECT_TRUE(Match("bugs != 11"));
    EXPECT_TRUE(Match("bugs < 11 and bugs <= 10 and bugs > 9 and bugs >= 10"));
    EXPECT_FALSE(Match("bugs > 10"));
    EXPECT_TRUE(Match("Product_Name > 'Car'"));
    EXPECT_TRUE(Match("when < __mtime_secs + 1 or true"));
}

TEST_F(ExpressionTest, KeywordsAndFunctionsAreCaseInsensitive) {
    EXPECT_TRUE(Match("bugs == 10 aNd NOT bugs == 11 Or false"));
    EXPECT_TRUE(Match("EXISTS(bugs) AND Starts(Product_Name, 'C') and LENGTH(arr) == 4"));
    EXPECT_TRUE(Match("State in ('NY')"));
}

TEST_F(ExpressionTest, NumericPromotion) {
    EXPECT_TRUE(Match("price > 9"));
    EXPECT_TRUE(Match("bugs == 10.0"));
    EXPECT_TRUE(Match("bugs + 0.5 == 10.5"));
    EXPECT_TRUE(Match("bugs / 3 == 3"));        // int64 division truncates
    EXPECT_TRUE(Match("bugs / 4.0 == 2.5"));
    EXPECT_TRUE(Match("-7 / 2 == -3"));
}

TEST_F(ExpressionTest, UnlikeTypesAndMissingAttributesCompareFalse) {
    EXPECT_FALSE(Match("State == 1"));
    EXPECT_FALSE(Match("State != 1"));
    EXPECT_FALSE(Match("missing == 1"));
    EXPECT_FALSE(Match("missing != 1"));
    EXPECT_TRUE(Match("NOT missing == 1"));
    EXPECT_FALSE(Match("blob == 'x'"));
    EXPECT_FALSE(Match("flag < true"));
    EXPECT_TRUE(Match("flag == true"));
}

TEST_F(ExpressionTest, ArithmeticAndBitOperators) {
    EXPECT_TRUE(Match("1 + 2 * 3 == 7"));
    EXPECT_TRUE(Match("(1 + 2) * 3 == 9"));
    EXPECT_TRUE(Match("10 - 2 - 3 == 5"));
    EXPECT_TRUE(Match("(6 & 3) == 2 and (6 | 1) == 7 and (6 ^ 2) == 4"));
    EXPECT_TRUE(Match("1 << 4 == 16 and 256 >> 4 == 16 and ~0 == -1"));
    EXPECT_TRUE(Match("-bugs == -10"));
    EXPECT_TRUE(Match("9223372036854775807 + 1 == -9223372036854775808"));  // wraps, no UB
}

TEST_F(ExpressionTest, UndefinedResultsAreFalseInConditions) {
    EXPECT_FALSE(Match("bugs / 0 == 1"));
    EXPECT_FALSE(Match("State + 1 == 1"));
    EXPECT_FALSE(Match("1 << 64 == 0"));
}

TEST_F(ExpressionTest, ArraysIndexAndInclusiveSlice) {
    EXPECT_TRUE(Match("arr[0] == 5 and arr[3] == 8"));
    EXPECT_FALSE(Match("arr[4] == 0"));
    EXPECT_FALSE(Match("arr[-1] == 0"));
    EXPECT_TRUE(Match("length(arr[1..2]) == 2 and arr[1..2][0] == 6"));
    EXPECT_TRUE(Match("length(arr[2..100]) == 2"));
    EXPECT_TRUE(Match("length(arr[3..1]) == 0"));
    EXPECT_TRUE(Match("max(arr) == 8 and min(arr) == 5 and max(darr) == 1.5"));
    EXPECT_TRUE(Match("darr[1] < 0"));
}

TEST_F(ExpressionTest, StringFunctions) {
    EXPECT_TRUE(Match("starts(Product_Name, 'Car')"));
    EXPECT_TRUE(Match("ends(Product_Name, '-X')"));
    EXPECT_TRUE(Match("contains(Product_Name, 'r-')"));
    EXPECT_FALSE(Match("contains(Product_Name, 'zz')"));
    EXPECT_TRUE(Match("length(Product_Name) == 5"));
    EXPECT_TRUE(Match("min(3, 4.5) == 3 and max(3, 4) == 4 and min('b', 'a') == 'a'"));
}

TEST_F(ExpressionTest, BacktickNamesAndEscapedStrings) {
    EXPECT_TRUE(Match("`my attr` == 'spaced'"));
    attrs_["q"] = Value::String("it's a\\b\n");
    EXPECT_TRUE(Match("q == 'it\\'s a\\\\b\\n'"));
    attrs_["hex"] = Value::String("A");
    EXPECT_TRUE(Match("hex == '\\x41'"));
}

TEST_F(ExpressionTest, SystemAttributes) {
    EXPECT_TRUE(Match("__size == 1234 and __name == 'item1' and __mtime_nsecs == 7"));
    EXPECT_TRUE(Match("exists(__size)"));
}

TEST_F(ExpressionTest, MalformedExpressionsReportPositionAndExpectation) {
    struct Case {
        std::string_view text;
        std::string_view want;
    };
    for (const Case& c : std::initializer_list<Case>{
             {"a ==", "byte 4: expected a value"},
             {"(a == 1", "byte 7: expected ')' to close '(' at byte 0"},
             {"a == 'x", "byte 5: unterminated string"},
             {"a = 1", "byte 2: '=' is assignment"},
             {"foo(1)", "byte 0: unknown function 'foo'"},
             {"exists(1)", "byte 7: the first argument of exists() must be an attribute name"},
             {"a == 1 b", "byte 7: expected an operator"},
             {"a IN ()", "IN needs at least one value"},
             {"a $ 1", "byte 2: unexpected character '$'"},
             {"99999999999999999999 == a", "byte 0: integer literal out of the int64 range"},
             {"starts(a)", "starts() takes 2 arguments, got 1"},
             {"`unterminated", "byte 0: unterminated backtick name"},
             {"'\\q'", "unknown escape"},
             {"a[1", "expected ']' to close '[' at byte 1"},
         }) {
        absl::Status s = ParseError(c.text);
        EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.text;
        EXPECT_NE(std::string(s.message()).find(c.want), std::string::npos) << c.text << " -> " << s.message();
    }
}

TEST_F(ExpressionTest, DeepNestingIsAnErrorNotACrash) {
    std::string deep(100000, '(');
    EXPECT_EQ(ParseError(deep).code(), absl::StatusCode::kInvalidArgument);
    std::string nots;
    for (int i = 0; i < 10000; ++i) {
        nots += "not ";
    }
    EXPECT_EQ(ParseError(nots + "true").code(), absl::StatusCode::kInvalidArgument);
    std::string ok(60, '(');
    ok += "1" + std::string(60, ')') + " == 1";
    EXPECT_TRUE(Condition::Parse(ok).ok());
}

TEST_F(ExpressionTest, LongOperatorChainsAreLimitedNotStackOverflows) {
    std::string chain = "a";
    for (int i = 0; i < 5000; ++i) {
        chain += "+a";  // 10 KB: within the length limit, far beyond the height limit
    }
    absl::Status s = ParseError(chain + " == 1");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(s.message()).find("operators deep"), std::string::npos) << s;
    EXPECT_EQ(Update::Parse("x = " + chain).status().code(), absl::StatusCode::kInvalidArgument);
    std::string ors = "bugs == 0";
    for (int i = 1; i < 500; ++i) {
        ors += " OR bugs == " + std::to_string(i);
    }
    EXPECT_TRUE(Match(ors)) << "500 clauses stay well inside the limit";
}

TEST_F(ExpressionTest, OversizedExpressionIsRejected) {
    std::string big = "a == '" + std::string(kMaxExpressionBytes, 'x') + "'";
    EXPECT_EQ(ParseError(big).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ExpressionTest, EvaluationDoesNotAllocate) {
    auto c = Condition::Parse(
        "(bugs < 15) AND starts(Product_Name, 'Car') AND NOT(State IN ('AZ','MA')) AND length(arr[1..2]) == 2 "
        "AND max(arr) > price - 2 AND `my attr` != 'x' AND __size > 0 AND contains(Product_Name, '-') "
        "AND if_not_exists(missing, 3) == 3");
    ASSERT_TRUE(c.ok()) << c.status();
    std::string bytes;
    EncodeAttributes(attrs_, &bytes);
    EncodedItemAttributes encoded(EncodedAttributes(bytes), "item1", &info_);
    MapAttributes mapped(&attrs_, "item1", &info_);
    g_allocations = 0;
    g_counting = true;
    bool a = c->Matches(encoded);
    bool b = c->Matches(mapped);
    g_counting = false;
    EXPECT_TRUE(a);
    EXPECT_TRUE(b);
    EXPECT_EQ(g_allocations.load(), 0);
}

TEST_F(ExpressionTest, EncodedItemsEvaluateLikeMaps) {
    std::string bytes;
    EncodeAttributes(attrs_, &bytes);
    EncodedItemAttributes item(EncodedAttributes(bytes), "item1", &info_);
    auto c = Condition::Parse("(bugs < 15) AND starts(Product_Name, 'Car') AND arr[1] == 6 AND __size == 1234");
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(c->Matches(item));
}

class UpdateTest : public ::testing::Test {
protected:
    absl::Status Apply(std::string_view text) {
        auto u = Update::Parse(text);
        if (!u.ok()) {
            return u.status();
        }
        return u->Apply(&attrs_, "it", &info_);
    }
    AttributeMap attrs_;
    ObjectInfo info_;
};

TEST_F(UpdateTest, SetWithAndWithoutKeywordAndRemove) {
    attrs_["b"] = Value::Int64(1);
    ASSERT_TRUE(Apply("SET a = 1; c = 'x'; REMOVE b").ok());
    EXPECT_EQ(attrs_["a"], Value::Int64(1));
    EXPECT_EQ(attrs_["c"], Value::String("x"));
    EXPECT_FALSE(attrs_.contains("b"));
    ASSERT_TRUE(Apply("set a = a + 1, d = 2.5;").ok());
    EXPECT_EQ(attrs_["a"], Value::Int64(2));
    EXPECT_EQ(attrs_["d"], Value::Double(2.5));
}

TEST_F(UpdateTest, AssignmentsApplyInOrderSoSwapWorks) {
    attrs_["a"] = Value::Int64(1);
    attrs_["b"] = Value::String("two");
    ASSERT_TRUE(Apply("temp=b; b=a; a=temp; REMOVE temp").ok());
    EXPECT_EQ(attrs_["a"], Value::String("two"));
    EXPECT_EQ(attrs_["b"], Value::Int64(1));
    EXPECT_FALSE(attrs_.contains("temp"));
}

TEST_F(UpdateTest, IfNotExistsCountsFromAStart) {
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(Apply("n = if_not_exists(n, 0) + 1").ok());
    }
    EXPECT_EQ(attrs_["n"], Value::Int64(3));
}

TEST_F(UpdateTest, InitArrayAndElementAssignment) {
    ASSERT_TRUE(Apply("arr = init_array(4, 'int'); arr[2] = 7; d = init_array(2, 'double'); d[1] = 3").ok());
    EXPECT_EQ(attrs_["arr"], Value::Int64Array({0, 0, 7, 0}));
    EXPECT_EQ(attrs_["d"], Value::DoubleArray({0, 3}));
    ASSERT_TRUE(Apply("arr[0] = arr[2] * 2").ok());
    EXPECT_EQ(attrs_["arr"], Value::Int64Array({14, 0, 7, 0}));
}

TEST_F(UpdateTest, ErrorsNameThePosition) {
    absl::Status s = Apply("a = missing + 1");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("byte 4"), std::string::npos) << s;
    EXPECT_NE(s.message().find("if_not_exists"), std::string::npos) << s;

    attrs_["s"] = Value::String("x");
    s = Apply("a = s * 2");
    EXPECT_NE(s.message().find("arithmetic needs numbers"), std::string::npos) << s;

    attrs_["arr"] = Value::Int64Array({1});
    EXPECT_NE(Apply("arr[5] = 1").message().find("out of range"), std::string::npos);
    EXPECT_NE(Apply("arr[0] = 'x'").message().find("must be an int64"), std::string::npos);
    EXPECT_NE(Apply("s[0] = 1").message().find("not an array"), std::string::npos);
    EXPECT_NE(Apply("__size = 1").message().find("read-only system attribute"), std::string::npos);
    EXPECT_NE(Apply("a == 1").message().find("expected '=' after the attribute name"), std::string::npos);
    EXPECT_NE(Apply("").message().find("empty"), std::string::npos);
    EXPECT_NE(Apply("REMOVE a[1]").message().find("whole attributes"), std::string::npos);
    EXPECT_NE(Apply("a = init_array(2, 'str')").message().find("'int' or 'double'"), std::string::npos);
}

TEST_F(UpdateTest, BooleanExpressionsCanBeAssigned) {
    attrs_["x"] = Value::Int64(3);
    ASSERT_TRUE(Apply("big = x > 2 AND NOT exists(y)").ok());
    EXPECT_EQ(attrs_["big"], Value::Bool(true));
}

}  // namespace
}  // namespace zerohop::expr
