#include "fio_json.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"

namespace zerohop {

absl::StatusOr<Result> FioJobResult(const std::string& name, std::string_view json, const std::string& side,
                                    double bytes_per_op) {
    // fio may print warnings before its JSON: it starts at the first '{'.
    size_t start = json.find('{');
    nlohmann::json doc = nlohmann::json::parse(start == std::string_view::npos ? json : json.substr(start), nullptr,
                                               /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.contains("jobs") || !doc["jobs"].is_array() || doc["jobs"].empty()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: fio's output is not its JSON: %s", name, std::string(json.substr(0, 300))));
    }
    const nlohmann::json& job = doc["jobs"][0];
    if (!job.contains(side) || !job[side].is_object()) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: fio's job has no \"%s\" side", name, side));
    }
    const nlohmann::json& s = job[side];
    if (!s.value("total_ios", uint64_t{0})) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: fio's job did no %s I/O", name, side));
    }
    Result r;
    r.name = name;
    r.ops_per_s = s.value("iops", 0.0);
    r.bytes_per_op = bytes_per_op;
    const nlohmann::json pct = s.contains("clat_ns") ? s["clat_ns"].value("percentile", nlohmann::json::object())
                                                     : nlohmann::json::object();
    auto us = [&](const char* key) { return pct.value(key, 0.0) / 1000; };
    r.p50_us = us("50.000000");
    r.p99_us = us("99.000000");
    r.p999_us = us("99.900000");
    return r;
}

}  // namespace zerohop
