#pragma once
// Structured logs on stderr, one logfmt line per event:
//
//   ts=2026-11-29T10:00:00.000000Z level=info msg="session opened" session=7 uid=1000
//
//   Log(LogLevel::kInfo, "session opened", "session", id, "uid", uid);
//
// Keys and values alternate after the message. A value is written bare when it can be
// (numbers, words); otherwise quoted, with `"` and `\` escaped and control characters as
// \n, \t or \u00XX, so that every line parses as logfmt whatever the values hold.

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace zerohop {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

LogLevel CurrentLogLevel();
void SetLogLevel(std::string_view level);  // debug | info | warning | error
// The whole line ("ts=... level=... msg=..." and `fields`), newline included.
std::string FormatLogLine(LogLevel level, std::string_view msg, std::string_view fields);
void WriteLogLine(LogLevel level, std::string_view msg, std::string_view fields);

namespace log_internal {
// Appends " key=value", the value quoted when it must be.
void AppendField(std::string* out, absl::string_view key, absl::string_view value);
inline absl::string_view Text(std::string_view v) { return absl::string_view(v.data(), v.size()); }
inline absl::string_view Text(const std::string& v) { return v; }
inline absl::string_view Text(const char* v) { return v; }
inline absl::string_view Text(absl::string_view v) { return v; }
inline void Fields(std::string*) {}
template <typename K, typename V, typename... Rest>
void Fields(std::string* out, const K& key, const V& value, const Rest&... rest) {
    if constexpr (std::is_arithmetic_v<V>) {
        AppendField(out, Text(key), absl::StrCat(value));
    } else {
        AppendField(out, Text(key), Text(value));
    }
    Fields(out, rest...);
}
}  // namespace log_internal

template <typename... KV>
void Log(LogLevel level, std::string_view msg, const KV&... kv) {
    static_assert(sizeof...(KV) % 2 == 0, "Log takes a message, then keys and values in pairs");
    if (level < CurrentLogLevel()) {
        return;
    }
    std::string fields;
    log_internal::Fields(&fields, kv...);
    WriteLogLine(level, msg, fields);
}

}  // namespace zerohop
