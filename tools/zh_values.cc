#include "zh_values.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace zerohop {

namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::StatusOr<Value> ParseArray(absl::string_view inner) {
    inner = absl::StripAsciiWhitespace(inner);
    if (inner.empty()) {
        return Value::Int64Array({});
    }
    std::vector<int64_t> ints;
    std::vector<double> doubles;
    bool all_ints = true;
    for (absl::string_view e : absl::StrSplit(inner, ',')) {
        e = absl::StripAsciiWhitespace(e);
        int64_t i;
        double d;
        if (all_ints && absl::SimpleAtoi(e, &i)) {
            ints.push_back(i);
            doubles.push_back(static_cast<double>(i));
        } else if (absl::SimpleAtod(e, &d)) {
            all_ints = false;
            doubles.push_back(d);
        } else {
            return absl::InvalidArgumentError(
                absl::StrFormat("array element \"%s\" is not a number (arrays hold int64 or double)", e));
        }
    }
    return all_ints ? Value::Int64Array(std::move(ints)) : Value::DoubleArray(std::move(doubles));
}

std::string FormatTime(Timestamp t) {
    absl::Time at = absl::FromUnixSeconds(t.secs) + absl::Nanoseconds(t.nsecs);
    return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", at, absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<Value> ParseCliValue(std::string_view text) {
    absl::string_view t = AV(text);
    int64_t i;
    double d;
    if (absl::SimpleAtoi(t, &i)) {
        return Value::Int64(i);
    }
    if (t.find_first_of(".eE") != absl::string_view::npos && absl::SimpleAtod(t, &d)) {
        return Value::Double(d);
    }
    if (t == "true" || t == "false") {
        return Value::Bool(t == "true");
    }
    if (t.size() >= 2 && t.front() == '\'' && t.back() == '\'') {
        return Value::String(std::string(t.substr(1, t.size() - 2)));
    }
    if (t.size() >= 2 && t.front() == '"' && t.back() == '"') {
        nlohmann::json s = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
        if (!s.is_string()) {
            return absl::InvalidArgumentError(
                absl::StrFormat("%s is not a JSON string (escape inner quotes as \\\")", t));
        }
        return Value::String(s.get<std::string>());
    }
    if (t.size() >= 2 && t.front() == '[' && t.back() == ']') {
        return ParseArray(t.substr(1, t.size() - 2));
    }
    if (!t.empty() && (t.front() == '"' || t.front() == '\'' || t.front() == '[')) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: a %c without its closing %c", t, t.front(),
                                                          t.front() == '[' ? ']' : t.front()));
    }
    if (absl::ConsumePrefix(&t, "b64:")) {
        std::string bytes;
        if (!absl::Base64Unescape(t, &bytes)) {
            return absl::InvalidArgumentError(absl::StrFormat("b64:%s is not base64", t));
        }
        return Value::Blob(std::move(bytes));
    }
    if (absl::ConsumePrefix(&t, "t:")) {
        absl::Time at;
        std::string err;
        if (!absl::ParseTime(absl::RFC3339_full, t, &at, &err)) {
            return absl::InvalidArgumentError(
                absl::StrFormat("t:%s is not an RFC 3339 time such as 2026-11-29T10:00:00.5Z (%s)", t, err));
        }
        int64_t secs = absl::ToUnixSeconds(at);  // (rounds toward the infinite past)
        int64_t nsecs = absl::ToInt64Nanoseconds(at - absl::FromUnixSeconds(secs));
        return Value::Time(Timestamp{secs, static_cast<int32_t>(nsecs)});
    }
    return Value::String(std::string(text));
}

nlohmann::json ValueToJson(const Value& v) {
    switch (v.type()) {
        case ValueType::kBool: return v.as_bool();
        case ValueType::kInt64: return v.as_int64();
        case ValueType::kDouble: return v.as_double();
        case ValueType::kString: return v.as_string();
        case ValueType::kBlob: return {{"blob", absl::Base64Escape(v.as_blob())}};
        case ValueType::kTimestamp: return {{"time", FormatTime(v.as_timestamp())}};
        case ValueType::kInt64Array: return v.as_int64_array();
        case ValueType::kDoubleArray: return v.as_double_array();
    }
    return nullptr;
}

nlohmann::json AttributesToJson(const AttributeMap& attrs) {
    nlohmann::json out = nlohmann::json::object();  // ordered by name (std::map underneath)
    for (const auto& [name, value] : attrs) {
        out[name] = ValueToJson(value);
    }
    return out;
}

std::string DumpJson(const nlohmann::json& j) {
    return j.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

}  // namespace zerohop
