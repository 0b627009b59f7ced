#include "zerohop/value.h"

#include <time.h>

#include <algorithm>
#include <limits>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "wire/codec.h"

namespace zerohop {

std::string_view ValueTypeName(ValueType t) {
    switch (t) {
        case ValueType::kBool: return "bool";
        case ValueType::kInt64: return "int64";
        case ValueType::kDouble: return "double";
        case ValueType::kString: return "string";
        case ValueType::kBlob: return "blob";
        case ValueType::kTimestamp: return "timestamp";
        case ValueType::kInt64Array: return "int64 array";
        case ValueType::kDoubleArray: return "double array";
    }
    return "unknown";
}

Timestamp Timestamp::Now() {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return Timestamp{ts.tv_sec, static_cast<int32_t>(ts.tv_nsec)};
}

int64_t Timestamp::ToNanos() const {
    int64_t ns;
    if (__builtin_mul_overflow(secs, int64_t{1'000'000'000}, &ns) || __builtin_add_overflow(ns, int64_t{nsecs}, &ns)) {
        return secs < 0 ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
    }
    return ns;
}

bool Timestamp::InNanosRange() const {
    int64_t ns;
    return !__builtin_mul_overflow(secs, int64_t{1'000'000'000}, &ns) && !__builtin_add_overflow(ns, int64_t{nsecs}, &ns);
}

Timestamp Timestamp::FromNanos(int64_t ns) {
    int64_t secs = ns / 1'000'000'000;
    int64_t rem = ns % 1'000'000'000;
    if (rem < 0) {
        rem += 1'000'000'000;
        secs -= 1;
    }
    return Timestamp{secs, static_cast<int32_t>(rem)};
}

ValueView ValueView::ArraySlice(size_t begin, size_t end) const {
    end = std::min(end, size_);
    begin = std::min(begin, end);
    return Array(type_, data_ + 8 * begin, end - begin);
}

Value ValueView::ToValue() const {
    switch (type_) {
        case ValueType::kBool: return Value::Bool(as_bool());
        case ValueType::kInt64: return Value::Int64(i_);
        case ValueType::kDouble: return Value::Double(d_);
        case ValueType::kString: return Value::String(std::string(as_bytes()));
        case ValueType::kBlob: return Value::Blob(std::string(as_bytes()));
        case ValueType::kTimestamp: return Value::Time(as_timestamp());
        case ValueType::kInt64Array: {
            std::vector<int64_t> v(size_);
            if (size_ != 0) {
                std::memcpy(v.data(), data_, 8 * size_);
            }
            return Value::Int64Array(std::move(v));
        }
        case ValueType::kDoubleArray: {
            std::vector<double> v(size_);
            if (size_ != 0) {
                std::memcpy(v.data(), data_, 8 * size_);
            }
            return Value::DoubleArray(std::move(v));
        }
    }
    return Value();
}

bool operator==(const ValueView& a, const ValueView& b) {
    if (a.type_ != b.type_) {
        return false;
    }
    switch (a.type_) {
        case ValueType::kBool: return a.as_bool() == b.as_bool();
        case ValueType::kInt64: return a.i_ == b.i_;
        case ValueType::kDouble: return a.d_ == b.d_;
        case ValueType::kTimestamp: return a.as_timestamp() == b.as_timestamp();
        case ValueType::kString:
        case ValueType::kBlob: return a.as_bytes() == b.as_bytes();
        case ValueType::kInt64Array:
        case ValueType::kDoubleArray:
            if (a.size_ != b.size_) {
                return false;
            }
            for (size_t i = 0; i < a.size_; ++i) {
                bool eq = a.type_ == ValueType::kInt64Array ? a.Int64At(i) == b.Int64At(i)
                                                            : a.DoubleAt(i) == b.DoubleAt(i);
                if (!eq) {
                    return false;
                }
            }
            return true;
    }
    return false;
}

ValueView Value::view() const {
    switch (type()) {
        case ValueType::kBool: return ValueView::Bool(as_bool());
        case ValueType::kInt64: return ValueView::Int64(as_int64());
        case ValueType::kDouble: return ValueView::Double(as_double());
        case ValueType::kString: return ValueView::String(as_string());
        case ValueType::kBlob: return ValueView::Blob(as_blob());
        case ValueType::kTimestamp: return ValueView::Time(as_timestamp());
        case ValueType::kInt64Array: {
            const auto& v = as_int64_array();
            return ValueView::Int64Array(reinterpret_cast<const char*>(v.data()), v.size());
        }
        case ValueType::kDoubleArray: {
            const auto& v = as_double_array();
            return ValueView::DoubleArray(reinterpret_cast<const char*>(v.data()), v.size());
        }
    }
    return ValueView();
}

namespace {

void AppendQuoted(std::string_view s, std::string* out) {
    for (unsigned char c : s) {
        if (c == '\'' || c == '\\') {
            out->push_back('\\');
            out->push_back(static_cast<char>(c));
        } else if (c < 0x20 || c >= 0x7f) {
            absl::StrAppendFormat(out, "\\x%02x", c);
        } else {
            out->push_back(static_cast<char>(c));
        }
    }
}

}  // namespace

std::string Value::DebugString() const {
    std::string out;
    switch (type()) {
        case ValueType::kBool: return as_bool() ? "true" : "false";
        case ValueType::kInt64: return absl::StrCat(as_int64());
        case ValueType::kDouble: return absl::StrFormat("%.17g", as_double());
        case ValueType::kString:
            out = "'";
            AppendQuoted(as_string(), &out);
            return out + "'";
        case ValueType::kBlob:
            out = "b'";
            AppendQuoted(as_blob(), &out);
            return out + "'";
        case ValueType::kTimestamp:
            return absl::StrFormat("t'%d.%09d'", as_timestamp().secs, as_timestamp().nsecs);
        case ValueType::kInt64Array: {
            out = "[";
            const auto& v = as_int64_array();
            for (size_t i = 0; i < v.size(); ++i) {
                absl::StrAppend(&out, i ? ", " : "", v[i]);
            }
            return out + "]";
        }
        case ValueType::kDoubleArray: {
            out = "[";
            const auto& v = as_double_array();
            for (size_t i = 0; i < v.size(); ++i) {
                absl::StrAppendFormat(&out, "%s%.17g", i ? ", " : "", v[i]);
            }
            return out + "]";
        }
    }
    return out;
}

absl::Status ValidateAttributeName(std::string_view name) {
    if (name.empty() || name.size() > kMaxAttributeNameBytes) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "attribute name must be 1..%d bytes, got %d", kMaxAttributeNameBytes, name.size()));
    }
    if (name.find('\0') != std::string_view::npos) {
        return absl::InvalidArgumentError("attribute name contains a NUL byte");
    }
    if (name.size() >= 2 && name[0] == '_' && name[1] == '_') {
        return absl::InvalidArgumentError(absl::StrFormat(
            "attribute \"%s\" starts with \"__\", which is reserved for read-only system attributes", name));
    }
    return absl::OkStatus();
}

void EncodeValue(ValueView v, std::string* out) {
    ByteWriter w(out);
    w.PutU8(static_cast<uint8_t>(v.type()));
    switch (v.type()) {
        case ValueType::kBool: w.PutU8(v.as_bool() ? 1 : 0); break;
        case ValueType::kInt64: w.PutFixed64(static_cast<uint64_t>(v.as_int64())); break;
        case ValueType::kDouble: w.PutDouble(v.as_double()); break;
        case ValueType::kString:
        case ValueType::kBlob: w.PutBytes(v.as_bytes()); break;
        case ValueType::kTimestamp:
            w.PutFixed64(static_cast<uint64_t>(v.as_timestamp().secs));
            w.PutFixed32(static_cast<uint32_t>(v.as_timestamp().nsecs));
            break;
        case ValueType::kInt64Array:
        case ValueType::kDoubleArray:
            w.PutVarint(v.array_size());
            w.PutRaw(v.as_bytes().data(), 8 * v.array_size());
            break;
    }
}

void EncodeAttributes(const AttributeMap& attrs, std::string* out) {
    // Sorted by name: equal maps always encode to equal bytes, whatever the hash order.
    absl::InlinedVector<const AttributeMap::value_type*, 16> sorted;
    sorted.reserve(attrs.size());
    for (const auto& entry : attrs) {
        sorted.push_back(&entry);
    }
    std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
    ByteWriter w(out);
    w.PutVarint(attrs.size());
    for (const auto* entry : sorted) {
        w.PutBytes(entry->first);
        EncodeValue(entry->second.view(), out);
    }
}

namespace internal {

namespace {

bool NextAttribute(ByteReader* r, std::string_view* name, ValueView* value) {
    uint8_t type;
    if (!r->GetBytes(name) || !r->GetU8(&type)) {
        return false;
    }
    switch (static_cast<ValueType>(type)) {
        case ValueType::kBool: {
            uint8_t b;
            if (!r->GetU8(&b) || b > 1) {
                return false;
            }
            *value = ValueView::Bool(b != 0);
            return true;
        }
        case ValueType::kInt64: {
            uint64_t i;
            if (!r->GetFixed64(&i)) {
                return false;
            }
            *value = ValueView::Int64(static_cast<int64_t>(i));
            return true;
        }
        case ValueType::kDouble: {
            double d;
            if (!r->GetDouble(&d)) {
                return false;
            }
            *value = ValueView::Double(d);
            return true;
        }
        case ValueType::kString:
        case ValueType::kBlob: {
            std::string_view s;
            if (!r->GetBytes(&s)) {
                return false;
            }
            *value = static_cast<ValueType>(type) == ValueType::kString ? ValueView::String(s) : ValueView::Blob(s);
            return true;
        }
        case ValueType::kTimestamp: {
            uint64_t secs;
            uint32_t nsecs;
            if (!r->GetFixed64(&secs) || !r->GetFixed32(&nsecs) || nsecs >= 1'000'000'000u) {
                return false;
            }
            *value = ValueView::Time(Timestamp{static_cast<int64_t>(secs), static_cast<int32_t>(nsecs)});
            return true;
        }
        case ValueType::kInt64Array:
        case ValueType::kDoubleArray: {
            uint64_t n;
            std::string_view packed;
            if (!r->GetVarint(&n) || n > r->remaining() / 8 || !r->GetView(8 * n, &packed)) {
                return false;
            }
            *value = static_cast<ValueType>(type) == ValueType::kInt64Array
                         ? ValueView::Int64Array(packed.data(), n)
                         : ValueView::DoubleArray(packed.data(), n);
            return true;
        }
    }
    return false;
}

}  // namespace

bool NextEncodedCount(std::string_view* in, uint64_t* count) {
    ByteReader r(*in);
    if (!r.GetVarint(count)) {
        return false;
    }
    *in = r.rest();
    return true;
}

bool NextEncodedAttribute(std::string_view* in, std::string_view* name, ValueView* value) {
    ByteReader r(*in);
    if (!NextAttribute(&r, name, value)) {
        return false;
    }
    *in = r.rest();
    return true;
}

}  // namespace internal

absl::Status EncodedAttributes::Validate() const {
    ByteReader r(bytes_);
    uint64_t n;
    if (!r.GetVarint(&n) || n > r.remaining()) {
        return absl::DataLossError("corrupt attribute encoding: bad count");
    }
    for (uint64_t i = 0; i < n; ++i) {
        std::string_view name;
        ValueView v;
        if (!internal::NextAttribute(&r, &name, &v)) {
            return absl::DataLossError(absl::StrFormat("corrupt attribute encoding: entry %d of %d", i, n));
        }
    }
    if (!r.empty()) {
        return absl::DataLossError("corrupt attribute encoding: trailing bytes");
    }
    return absl::OkStatus();
}

std::optional<ValueView> EncodedAttributes::Find(std::string_view name) const {
    std::optional<ValueView> found;
    ForEach([&](std::string_view n, ValueView v) {
        if (n == name) {
            found = v;
            return false;
        }
        return true;
    });
    return found;
}

size_t EncodedAttributes::count() const {
    ByteReader r(bytes_);
    uint64_t n = 0;
    r.GetVarint(&n);
    return n;
}

absl::StatusOr<AttributeMap> DecodeAttributes(std::string_view bytes) {
    EncodedAttributes enc(bytes);
    ZH_RETURN_IF_ERROR(enc.Validate());
    AttributeMap out;
    out.reserve(enc.count());
    enc.ForEach([&](std::string_view name, ValueView v) {
        out.insert_or_assign(std::string(name), v.ToValue());
        return true;
    });
    return out;
}

}  // namespace zerohop
