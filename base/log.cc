#include "base/log.h"

#include <atomic>
#include <cstdio>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace zerohop {

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

// Bare in logfmt: non-empty, and no space, '=', '"', '\' or control character.
bool Bare(absl::string_view v) {
    if (v.empty()) {
        return false;
    }
    for (unsigned char c : v) {
        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f) {
            return false;
        }
    }
    return true;
}

void AppendValue(std::string* out, absl::string_view v) {
    if (Bare(v)) {
        out->append(v.data(), v.size());
        return;
    }
    out->push_back('"');
    for (unsigned char c : v) {
        switch (c) {
            case '"': out->append("\\\""); break;
            case '\\': out->append("\\\\"); break;
            case '\n': out->append("\\n"); break;
            case '\t': out->append("\\t"); break;
            case '\r': out->append("\\r"); break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    absl::StrAppendFormat(out, "\\u%04x", c);
                } else {
                    out->push_back(static_cast<char>(c));
                }
        }
    }
    out->push_back('"');
}

}  // namespace

namespace log_internal {

void AppendField(std::string* out, absl::string_view key, absl::string_view value) {
    out->push_back(' ');
    out->append(key.data(), key.size());
    out->push_back('=');
    AppendValue(out, value);
}

}  // namespace log_internal

LogLevel CurrentLogLevel() { return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed)); }

void SetLogLevel(std::string_view level) {
    LogLevel l = level == "debug" ? LogLevel::kDebug
                 : level == "warning" ? LogLevel::kWarning
                 : level == "error" ? LogLevel::kError
                                    : LogLevel::kInfo;
    g_level.store(static_cast<int>(l));
}

std::string FormatLogLine(LogLevel level, std::string_view msg, std::string_view fields) {
    static constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
    std::string line = absl::StrFormat("ts=%s level=%s msg=",
                                       absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()),
                                       kNames[static_cast<int>(level)]);
    // The message is always quoted: it is a sentence.
    if (Bare(absl::string_view(msg.data(), msg.size()))) {
        absl::StrAppend(&line, "\"", absl::string_view(msg.data(), msg.size()), "\"");
    } else {
        AppendValue(&line, absl::string_view(msg.data(), msg.size()));
    }
    line.append(fields.data(), fields.size());
    line.push_back('\n');
    return line;
}

void WriteLogLine(LogLevel level, std::string_view msg, std::string_view fields) {
    std::string line = FormatLogLine(level, msg, fields);
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace zerohop
