#pragma once
// Typed attribute values, attribute maps and their binary encoding.
//
// An attribute value is one of: bool, int64, double, string (UTF-8), blob, timestamp,
// int64 array, double array. `Value` owns its data; `ValueView` is a cheap non-owning view
// (of a Value, or of encoded bytes) used where nothing may be allocated, such as evaluating
// a filter against every item of a table.
//
//   zerohop::AttributeMap attrs;
//   attrs["age"] = zerohop::Value::Int64(40);
//   attrs["name"] = zerohop::Value::String("alice");
//   std::string bytes;
//   zerohop::EncodeAttributes(attrs, &bytes);
//   zerohop::EncodedAttributes enc(bytes);            // validate once, then look up in place
//   if (enc.Validate().ok()) { auto age = enc.Find("age"); /* ValueView, no copy */ }

#include <compare>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zerohop {

enum class ValueType : uint8_t {
    kBool = 1,
    kInt64 = 2,
    kDouble = 3,
    kString = 4,
    kBlob = 5,
    kTimestamp = 6,
    kInt64Array = 7,
    kDoubleArray = 8,
};

std::string_view ValueTypeName(ValueType t);

struct Timestamp {
    int64_t secs = 0;
    int32_t nsecs = 0;  // 0..999'999'999

    static Timestamp Now();
    // Saturates outside the int64 nanosecond range (years -1677..2262).
    int64_t ToNanos() const;
    // Whether ToNanos is exact.
    bool InNanosRange() const;
    static Timestamp FromNanos(int64_t ns);
    friend auto operator<=>(const Timestamp&, const Timestamp&) = default;
};

inline constexpr size_t kMaxAttributeNameBytes = 255;

class Value;

// A non-owning view of a value. Strings and blobs point at their bytes; arrays at packed
// little-endian 8-byte elements (read through Int64At/DoubleAt, which need no alignment).
class ValueView {
public:
    ValueView() = default;
    static ValueView Bool(bool v) { ValueView r(ValueType::kBool); r.i_ = v; return r; }
    static ValueView Int64(int64_t v) { ValueView r(ValueType::kInt64); r.i_ = v; return r; }
    static ValueView Double(double v) { ValueView r(ValueType::kDouble); r.d_ = v; return r; }
    static ValueView String(std::string_view s) { return Bytes(ValueType::kString, s); }
    static ValueView Blob(std::string_view s) { return Bytes(ValueType::kBlob, s); }
    static ValueView Time(Timestamp t) {
        ValueView r(ValueType::kTimestamp);
        r.i_ = t.secs;
        r.ns_ = t.nsecs;
        return r;
    }
    static ValueView Int64Array(const char* packed, size_t count) {
        return Array(ValueType::kInt64Array, packed, count);
    }
    static ValueView DoubleArray(const char* packed, size_t count) {
        return Array(ValueType::kDoubleArray, packed, count);
    }

    ValueType type() const { return type_; }
    bool is_numeric() const { return type_ == ValueType::kInt64 || type_ == ValueType::kDouble; }
    bool is_array() const { return type_ == ValueType::kInt64Array || type_ == ValueType::kDoubleArray; }
    bool as_bool() const { return i_ != 0; }
    int64_t as_int64() const { return i_; }
    double as_double() const { return d_; }
    // An int64 or a double as a double.
    double as_number() const { return type_ == ValueType::kInt64 ? static_cast<double>(i_) : d_; }
    Timestamp as_timestamp() const { return Timestamp{i_, ns_}; }
    std::string_view as_bytes() const { return std::string_view(data_, size_); }
    size_t array_size() const { return size_; }
    int64_t Int64At(size_t i) const { int64_t v; std::memcpy(&v, data_ + 8 * i, 8); return v; }
    double DoubleAt(size_t i) const { double v; std::memcpy(&v, data_ + 8 * i, 8); return v; }
    // A sub-range [begin, end) of an array, clipped to its bounds.
    ValueView ArraySlice(size_t begin, size_t end) const;

    Value ToValue() const;
    friend bool operator==(const ValueView& a, const ValueView& b);

private:
    explicit ValueView(ValueType t) : type_(t) {}
    static ValueView Bytes(ValueType t, std::string_view s) {
        ValueView r(t);
        r.data_ = s.data();
        r.size_ = s.size();
        return r;
    }
    static ValueView Array(ValueType t, const char* packed, size_t count) {
        ValueView r(t);
        r.data_ = packed;
        r.size_ = count;
        return r;
    }

    ValueType type_ = ValueType::kBool;
    union {
        int64_t i_ = 0;  // also a timestamp's seconds
        double d_;
    };
    int32_t ns_ = 0;  // a timestamp's nanoseconds
    const char* data_ = nullptr;
    size_t size_ = 0;
};

struct BlobBytes {
    std::string bytes;
    friend bool operator==(const BlobBytes&, const BlobBytes&) = default;
};

class Value {
public:
    Value() : v_(false) {}
    static Value Bool(bool v) { return Value(Rep(std::in_place_index<0>, v)); }
    static Value Int64(int64_t v) { return Value(Rep(std::in_place_index<1>, v)); }
    static Value Double(double v) { return Value(Rep(std::in_place_index<2>, v)); }
    static Value String(std::string v) { return Value(Rep(std::in_place_index<3>, std::move(v))); }
    static Value Blob(std::string v) { return Value(Rep(std::in_place_index<4>, BlobBytes{std::move(v)})); }
    static Value Time(Timestamp v) { return Value(Rep(std::in_place_index<5>, v)); }
    static Value Int64Array(std::vector<int64_t> v) { return Value(Rep(std::in_place_index<6>, std::move(v))); }
    static Value DoubleArray(std::vector<double> v) { return Value(Rep(std::in_place_index<7>, std::move(v))); }

    ValueType type() const { return static_cast<ValueType>(v_.index() + 1); }
    bool as_bool() const { return std::get<0>(v_); }
    int64_t as_int64() const { return std::get<1>(v_); }
    double as_double() const { return std::get<2>(v_); }
    const std::string& as_string() const { return std::get<3>(v_); }
    const std::string& as_blob() const { return std::get<4>(v_).bytes; }
    Timestamp as_timestamp() const { return std::get<5>(v_); }
    const std::vector<int64_t>& as_int64_array() const { return std::get<6>(v_); }
    const std::vector<double>& as_double_array() const { return std::get<7>(v_); }
    std::vector<int64_t>* mutable_int64_array() { return std::get_if<6>(&v_); }
    std::vector<double>* mutable_double_array() { return std::get_if<7>(&v_); }

    ValueView view() const;
    // A readable rendering: 42, 1.5, 'text', b'\x00\x01', t'12.000000005', [1, 2].
    std::string DebugString() const;

    friend bool operator==(const Value& a, const Value& b) { return a.v_ == b.v_; }

private:
    using Rep = std::variant<bool, int64_t, double, std::string, BlobBytes, Timestamp, std::vector<int64_t>,
                             std::vector<double>>;
    explicit Value(Rep v) : v_(std::move(v)) {}
    Rep v_;
};

using AttributeMap = absl::flat_hash_map<std::string, Value>;

// Names of user attributes: 1..255 bytes, no NUL, and not starting with "__" (reserved for
// system attributes).
absl::Status ValidateAttributeName(std::string_view name);

// Encoding: varint count, then per attribute, in name order: name (varint length + bytes),
// type byte, payload. Equal maps encode to equal bytes.
void EncodeValue(ValueView v, std::string* out);
void EncodeAttributes(const AttributeMap& attrs, std::string* out);
absl::StatusOr<AttributeMap> DecodeAttributes(std::string_view bytes);

// Read access to encoded attributes without decoding them into a map. Validate() once
// before Find()/ForEach() on bytes that were not produced by EncodeAttributes in this process.
class EncodedAttributes {
public:
    EncodedAttributes() = default;
    explicit EncodedAttributes(std::string_view bytes) : bytes_(bytes) {}

    absl::Status Validate() const;
    std::optional<ValueView> Find(std::string_view name) const;
    size_t count() const;
    // fn(std::string_view name, ValueView value); stops early when fn returns false.
    template <typename Fn>
    void ForEach(Fn&& fn) const;
    std::string_view bytes() const { return bytes_; }

private:
    std::string_view bytes_;
};

namespace internal {
// Reads the attribute count at the front of `*in`; false on corrupt input.
bool NextEncodedCount(std::string_view* in, uint64_t* count);
// Decodes the (name, value) entry at the front of `*in`; false on corrupt input.
bool NextEncodedAttribute(std::string_view* in, std::string_view* name, ValueView* value);
}  // namespace internal

template <typename Fn>
void EncodedAttributes::ForEach(Fn&& fn) const {
    std::string_view in = bytes_;
    uint64_t n = 0;
    if (!internal::NextEncodedCount(&in, &n)) {
        return;
    }
    for (uint64_t i = 0; i < n; ++i) {
        std::string_view name;
        ValueView v;
        if (!internal::NextEncodedAttribute(&in, &name, &v) || !fn(name, v)) {
            return;
        }
    }
}

}  // namespace zerohop
