#pragma once
// The measuring half of zh-bench: timing loops, percentiles, and printing a workload
// beside its baseline.

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace zerohop {

using Clock = std::chrono::steady_clock;

struct Result {
    std::string name;
    std::string unit = "op";  // what one operation is
    double ops_per_s = 0;
    double p50_us = 0, p99_us = 0, p999_us = 0;
    double bytes_per_op = 0;
};

struct Comparison {
    Result ours;
    std::optional<Result> baseline;
    std::string baseline_name;
    // Where a workload is judged by something other than throughput (latency, bandwidth):
    // the ratio reported instead of ours / baseline ops/s, and what it divides.
    std::optional<double> ratio;
    std::string ratio_means;
    std::string extra_json;  // more fields of the JSON line, `"name": value, ...`
};

// Throughput and latency percentiles of per-operation samples (microseconds) taken over `secs`.
inline Result Summarize(const std::string& name, std::vector<double>* samples, double secs, double bytes_per_op) {
    std::sort(samples->begin(), samples->end());
    auto pct = [&](double p) {
        return (*samples)[std::min(samples->size() - 1, static_cast<size_t>(p * samples->size()))];
    };
    Result r;
    r.name = name;
    r.ops_per_s = samples->size() / secs;
    r.p50_us = pct(0.50);
    r.p99_us = pct(0.99);
    r.p999_us = pct(0.999);
    r.bytes_per_op = bytes_per_op;
    return r;
}

// Runs `op` repeatedly for about `duration`, timing each call.
inline Result Measure(const std::string& name, std::chrono::milliseconds duration, const std::function<void()>& op,
               double bytes_per_op = 0) {
    std::vector<double> samples;
    samples.reserve(1 << 20);
    for (int i = 0; i < 100; ++i) {
        op();  // warm up
    }
    auto start = Clock::now();
    auto deadline = start + duration;
    Clock::time_point now = start;
    while (now < deadline) {
        // Time batches of 16 to keep the clock's cost out of sub-microsecond operations.
        auto t0 = Clock::now();
        for (int i = 0; i < 16; ++i) {
            op();
        }
        now = Clock::now();
        double per = std::chrono::duration<double, std::micro>(now - t0).count() / 16;
        for (int i = 0; i < 16; ++i) {
            samples.push_back(per);
        }
    }
    return Summarize(name, &samples, std::chrono::duration<double>(now - start).count(), bytes_per_op);
}

// Times single operations: for ones slow enough (>10 us) that the clock's cost is noise.
inline Result MeasureEach(const std::string& name, std::chrono::milliseconds duration, const std::function<void()>& op,
                   double bytes_per_op = 0) {
    std::vector<double> samples;
    samples.reserve(1 << 18);
    for (int i = 0; i < 5; ++i) {
        op();
    }
    auto start = Clock::now();
    auto deadline = start + duration;
    Clock::time_point now = start;
    while (now < deadline || samples.size() < 20) {
        auto t0 = Clock::now();
        op();
        now = Clock::now();
        samples.push_back(std::chrono::duration<double, std::micro>(now - t0).count());
    }
    return Summarize(name, &samples, std::chrono::duration<double>(now - start).count(), bytes_per_op);
}

inline void Check(const absl::Status& s, const char* what) {
    if (!s.ok()) {
        std::cerr << "zh-bench: " << what << ": " << s << "\n";
        std::exit(1);
    }
}

inline std::string ResultJson(const Result& r) {
    std::string s = absl::StrFormat(R"("ops_per_s": %.1f, "p50_us": %.3f, "p99_us": %.3f, "p999_us": %.3f)",
                                    r.ops_per_s, r.p50_us, r.p99_us, r.p999_us);
    if (r.bytes_per_op > 0) {
        absl::StrAppendFormat(&s, R"(, "mb_per_s": %.1f)", r.ops_per_s * r.bytes_per_op / 1e6);
    }
    return s;
}

inline void Print(const Comparison& c, bool json) {
    const Result& r = c.ours;
    if (json) {
        std::string line = absl::StrFormat(R"({"name": "%s", %s)", r.name, ResultJson(r));
        if (c.baseline) {
            absl::StrAppendFormat(&line, R"(, "baseline": {"name": "%s", %s}, "ratio": %.3f)", c.baseline_name,
                                  ResultJson(*c.baseline), c.ratio.value_or(r.ops_per_s / c.baseline->ops_per_s));
            if (c.ratio) {
                absl::StrAppendFormat(&line, R"(, "ratio_means": "%s")", c.ratio_means);
            }
        }
        if (!c.extra_json.empty()) {
            absl::StrAppend(&line, ", ", c.extra_json);
        }
        std::cout << line << "}\n";
        return;
    }
    auto row = [](const std::string& name, const Result& x) {
        std::string mb = x.bytes_per_op > 0 ? absl::StrFormat("%9.1f MB/s", x.ops_per_s * x.bytes_per_op / 1e6) : "";
        std::cout << absl::StrFormat("%-34s %12.0f ops/s  p50 %9.3f us  p99 %9.3f us  p999 %9.3f us %s\n", name,
                                     x.ops_per_s, x.p50_us, x.p99_us, x.p999_us, mb);
    };
    row(r.name, r);
    if (c.baseline) {
        row("  baseline: " + c.baseline_name, *c.baseline);
        if (c.ratio) {
            std::cout << absl::StrFormat("  ratio (%s): %.3f\n", c.ratio_means, *c.ratio);
        } else {
            std::cout << absl::StrFormat("  ratio (ours / baseline throughput): %.3f\n",
                                         r.ops_per_s / c.baseline->ops_per_s);
        }
    }
    if (!c.extra_json.empty()) {
        std::cout << "  " << c.extra_json << "\n";
    }
}

}  // namespace zerohop
