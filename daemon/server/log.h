#pragma once
// Structured logs on stderr, one line per event: `ts=... level=info msg="..." key=value`.
//
//   ZH_LOG(kInfo, "session opened", "session", id, "uid", uid);

#include <cstdio>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace zerohop {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

LogLevel CurrentLogLevel();
void SetLogLevel(std::string_view level);  // debug | info | warning | error
void WriteLogLine(LogLevel level, std::string_view msg, std::string_view fields);

namespace log_internal {
inline absl::string_view Alpha(std::string_view v) { return absl::string_view(v.data(), v.size()); }
inline absl::string_view Alpha(const std::string& v) { return v; }
inline absl::string_view Alpha(const char* v) { return v; }
template <typename T>
const T& Alpha(const T& v) {
    return v;
}
inline void Fields(std::string*) {}
template <typename K, typename V, typename... Rest>
void Fields(std::string* out, const K& key, const V& value, const Rest&... rest) {
    absl::StrAppend(out, " ", Alpha(key), "=", Alpha(value));
    Fields(out, rest...);
}
}  // namespace log_internal

template <typename... KV>
void Log(LogLevel level, std::string_view msg, const KV&... kv) {
    if (level < CurrentLogLevel()) {
        return;
    }
    std::string fields;
    log_internal::Fields(&fields, kv...);
    WriteLogLine(level, msg, fields);
}

}  // namespace zerohop
