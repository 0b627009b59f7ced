#include "server/log.h"

#include <atomic>

#include "absl/strings/str_format.h"

namespace zerohop {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
}

LogLevel CurrentLogLevel() { return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed)); }

void SetLogLevel(std::string_view level) {
    LogLevel l = level == "debug" ? LogLevel::kDebug
                 : level == "warning" ? LogLevel::kWarning
                 : level == "error" ? LogLevel::kError
                                    : LogLevel::kInfo;
    g_level.store(static_cast<int>(l));
}

void WriteLogLine(LogLevel level, std::string_view msg, std::string_view fields) {
    static constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
    std::string line = absl::StrFormat("ts=%s level=%s msg=\"%s\"%s\n",
                                       absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()),
                                       kNames[static_cast<int>(level)], msg, fields);
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace zerohop
