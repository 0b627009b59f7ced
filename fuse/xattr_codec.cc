#include "xattr_codec.h"

#include <charconv>
#include <cmath>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace zerohop::fuse {

namespace {

std::string DoubleText(double d) {
    if (std::isnan(d)) {
        return "nan";
    }
    if (std::isinf(d)) {
        return d > 0 ? "inf" : "-inf";
    }
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, d);  // shortest round-trip form
    return std::string(buf, r.ptr);
}

std::optional<double> ParseDouble(std::string_view t) {
    if (t == "nan") {
        return std::nan("");
    }
    if (t == "inf") {
        return INFINITY;
    }
    if (t == "-inf") {
        return -INFINITY;
    }
    double d;
    auto r = std::from_chars(t.data(), t.data() + t.size(), d);
    if (r.ec != std::errc() || r.ptr != t.data() + t.size()) {
        return std::nullopt;
    }
    return d;
}

std::optional<int64_t> ParseInt(std::string_view t) {
    int64_t v;
    auto r = std::from_chars(t.data(), t.data() + t.size(), v);
    if (r.ec != std::errc() || r.ptr != t.data() + t.size()) {
        return std::nullopt;
    }
    return v;
}

template <typename T, typename Parse>
std::optional<std::vector<T>> ParseArray(std::string_view t, Parse parse) {
    if (t.size() < 2 || t.front() != '[' || t.back() != ']') {
        return std::nullopt;
    }
    std::vector<T> out;
    std::string_view inner = t.substr(1, t.size() - 2);
    if (inner.empty()) {
        return out;
    }
    for (absl::string_view part : absl::StrSplit(absl::string_view(inner.data(), inner.size()), ',')) {
        auto v = parse(std::string_view(part.data(), part.size()));
        if (!v) {
            return std::nullopt;
        }
        out.push_back(*v);
    }
    return out;
}

bool ValidUtf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (n == 0 || i + n > s.size()) {
            return false;
        }
        for (size_t k = 1; k < n; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) {
                return false;
            }
        }
        i += n;
    }
    return true;
}

std::optional<Value> ParseAs(ValueType type, std::string_view t) {
    switch (type) {
        case ValueType::kString:
            return ValidUtf8(t) ? std::optional<Value>(Value::String(std::string(t))) : std::nullopt;
        case ValueType::kBlob:
            return Value::Blob(std::string(t));
        case ValueType::kInt64:
            if (auto v = ParseInt(t)) {
                return Value::Int64(*v);
            }
            return std::nullopt;
        case ValueType::kDouble:
            if (auto v = ParseDouble(t)) {
                return Value::Double(*v);
            }
            return std::nullopt;
        case ValueType::kBool:
            if (t == "true" || t == "false") {
                return Value::Bool(t == "true");
            }
            return std::nullopt;
        case ValueType::kTimestamp: {
            size_t dot = t.find('.');
            if (dot == std::string_view::npos || t.size() - dot - 1 != 9) {
                return std::nullopt;
            }
            auto secs = ParseInt(t.substr(0, dot));
            auto nanos = ParseInt(t.substr(dot + 1));
            if (!secs || !nanos || *nanos < 0) {
                return std::nullopt;
            }
            return Value::Time(Timestamp{*secs, static_cast<int32_t>(*nanos)});
        }
        case ValueType::kInt64Array:
            if (auto v = ParseArray<int64_t>(t, ParseInt)) {
                return Value::Int64Array(std::move(*v));
            }
            return std::nullopt;
        case ValueType::kDoubleArray:
            if (auto v = ParseArray<double>(t, ParseDouble)) {
                return Value::DoubleArray(std::move(*v));
            }
            return std::nullopt;
    }
    return std::nullopt;
}

}  // namespace

std::string ValueToXattr(const Value& v) {
    switch (v.type()) {
        case ValueType::kString:
            return v.as_string();
        case ValueType::kBlob:
            return v.as_blob();
        case ValueType::kInt64:
            return absl::StrCat(v.as_int64());
        case ValueType::kDouble:
            return DoubleText(v.as_double());
        case ValueType::kBool:
            return v.as_bool() ? "true" : "false";
        case ValueType::kTimestamp:
            return absl::StrFormat("%d.%09d", v.as_timestamp().secs, v.as_timestamp().nsecs);
        case ValueType::kInt64Array: {
            std::string out = "[";
            for (size_t i = 0; i < v.as_int64_array().size(); ++i) {
                absl::StrAppend(&out, i ? "," : "", v.as_int64_array()[i]);
            }
            return out + "]";
        }
        case ValueType::kDoubleArray: {
            std::string out = "[";
            for (size_t i = 0; i < v.as_double_array().size(); ++i) {
                absl::StrAppend(&out, i ? "," : "", DoubleText(v.as_double_array()[i]));
            }
            return out + "]";
        }
    }
    return "";
}

Value XattrToValue(std::string_view text, std::optional<ValueType> current) {
    if (current) {
        if (auto v = ParseAs(*current, text)) {
            return std::move(*v);
        }
    }
    if (ValidUtf8(text)) {
        return Value::String(std::string(text));
    }
    return Value::Blob(std::string(text));
}

}  // namespace zerohop::fuse
