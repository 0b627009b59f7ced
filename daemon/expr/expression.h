#pragma once
// The v3io expression language: filters, conditions and update expressions.
//
// Conditions and filters:
//   ==  !=  <  <=  >  >=   AND OR NOT (any case)   x IN (a, b, ...)
//   + - * /   & | ^ << >> ~   ( )   'strings'   `backtick names`   true false
//   arr[i]   arr[i..j] (both ends included)
//   exists(a) starts(s, p) ends(s, p) contains(s, p) length(x) min(a, b) max(a, b)
//   min(array) max(array) if_not_exists(a, v) init_array(n, 'int'|'double')
// Updates:
//   [SET] a = expr [, b = expr] ; REMOVE c [, d] ; arr[3] = expr ; ...
//   Statements apply in order, each against the item as updated so far.
//
// Typing rules (also in docs/EXPRESSIONS.md):
//   - int64 op int64 is int64 (wrapping, '/' truncates toward zero); with a double it is a double.
//   - A comparison of unlike types, or with a missing attribute, is false (also for !=).
//     Numbers compare across int64/double; strings and blobs bytewise; timestamps by time;
//     arrays and bools only with == and !=.
//   - AND/OR/NOT treat anything but a true bool as false.
//   - In a filter or condition an undefined result (division by zero, a bad operand type) is
//     false; in an update it is InvalidArgument naming the byte position.
//
//   auto cond = zerohop::expr::Condition::Parse("(bugs < 15) AND starts(Product_Name, 'Car')");
//   if (!cond.ok()) return cond.status();                // InvalidArgument "at byte N: ..."
//   zerohop::expr::MapAttributes item(&attrs, name, &info);
//   bool match = cond->Matches(item);                    // no allocation
//
//   auto upd = zerohop::expr::Update::Parse("SET n = if_not_exists(n, 0) + 1; REMOVE tmp");
//   absl::Status s = upd->Apply(&attrs, name, &info);

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zerohop/object.h"
#include "zerohop/value.h"

namespace zerohop::expr {

inline constexpr size_t kMaxExpressionBytes = 64 * 1024;
inline constexpr int kMaxNesting = 128;
// Evaluation recurses once per level of the tree, chains of operators included.
inline constexpr uint32_t kMaxTreeHeight = 1024;
inline constexpr int64_t kMaxInitArray = 1 << 20;

// What an expression reads: attributes by name, user and system alike.
class AttributeSource {
public:
    virtual ~AttributeSource() = default;
    virtual std::optional<ValueView> Find(std::string_view name) const = 0;
};

// An item held as an AttributeMap, with its system attributes from `info` (may be null).
class MapAttributes : public AttributeSource {
public:
    MapAttributes(const AttributeMap* attrs, std::string_view name, const ObjectInfo* info)
        : attrs_(attrs), name_(name), info_(info) {}
    std::optional<ValueView> Find(std::string_view name) const override;

private:
    const AttributeMap* attrs_;
    std::string_view name_;
    const ObjectInfo* info_;
};

// An item held in its stored encoding (no decoding into a map), with system attributes.
class EncodedItemAttributes : public AttributeSource {
public:
    EncodedItemAttributes(EncodedAttributes attrs, std::string_view name, const ObjectInfo* info)
        : attrs_(attrs), name_(name), info_(info) {}
    std::optional<ValueView> Find(std::string_view name) const override;

private:
    EncodedAttributes attrs_;
    std::string_view name_;
    const ObjectInfo* info_;
};

namespace internal {
struct Program;
}

// A parsed filter or condition. The empty expression matches everything.
class Condition {
public:
    Condition();
    ~Condition();
    Condition(Condition&&) noexcept;
    Condition& operator=(Condition&&) noexcept;

    static absl::StatusOr<Condition> Parse(std::string_view text);

    bool empty() const;
    bool Matches(const AttributeSource& item) const;
    const std::string& text() const;

private:
    std::unique_ptr<internal::Program> program_;
};

// A parsed update expression.
class Update {
public:
    Update();
    ~Update();
    Update(Update&&) noexcept;
    Update& operator=(Update&&) noexcept;

    static absl::StatusOr<Update> Parse(std::string_view text);

    // Applies every statement in order to `attrs`. On error `attrs` may be partly updated:
    // callers apply updates to a copy and keep it only on success.
    absl::Status Apply(AttributeMap* attrs, std::string_view name, const ObjectInfo* info) const;
    const std::string& text() const;

private:
    std::unique_ptr<internal::Program> program_;
};

}  // namespace zerohop::expr
