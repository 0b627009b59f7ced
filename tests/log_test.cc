// zerohopd's log lines are logfmt: every line parses back into the message and the values
// it was given, whatever they hold.

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "base/log.h"

namespace zerohop {
namespace {

// A strict logfmt reader: key=value pairs separated by one space; a value is bare (no
// space, '=', '"') or quoted with \" \\ \n \t \r \uXXXX escapes. Empty map on any error.
std::map<std::string, std::string> ParseLogfmt(std::string_view line) {
    std::map<std::string, std::string> out;
    size_t i = 0;
    auto fail = [&] { return std::map<std::string, std::string>(); };
    if (line.empty() || line.back() != '\n') {
        return fail();
    }
    line.remove_suffix(1);
    while (i < line.size()) {
        size_t eq = line.find('=', i);
        if (eq == std::string_view::npos || eq == i) {
            return fail();
        }
        std::string key(line.substr(i, eq - i));
        if (key.find_first_of(" \"") != std::string::npos) {
            return fail();
        }
        i = eq + 1;
        std::string value;
        if (i < line.size() && line[i] == '"') {
            ++i;
            for (;;) {
                if (i >= line.size()) {
                    return fail();
                }
                char c = line[i++];
                if (c == '"') {
                    break;
                }
                if (c != '\\') {
                    value.push_back(c);
                    continue;
                }
                if (i >= line.size()) {
                    return fail();
                }
                char e = line[i++];
                if (e == 'n') {
                    value.push_back('\n');
                } else if (e == 't') {
                    value.push_back('\t');
                } else if (e == 'r') {
                    value.push_back('\r');
                } else if (e == '"' || e == '\\') {
                    value.push_back(e);
                } else if (e == 'u' && i + 4 <= line.size()) {
                    value.push_back(static_cast<char>(std::stoi(std::string(line.substr(i, 4)), nullptr, 16)));
                    i += 4;
                } else {
                    return fail();
                }
            }
        } else {
            size_t end = line.find(' ', i);
            end = end == std::string_view::npos ? line.size() : end;
            value = std::string(line.substr(i, end - i));
            if (value.empty() || value.find_first_of("=\"") != std::string::npos) {
                return fail();
            }
            i = end;
        }
        if (!out.emplace(key, value).second) {
            return fail();  // a key twice
        }
        if (i < line.size()) {
            if (line[i] != ' ') {
                return fail();
            }
            ++i;
        }
    }
    return out;
}

std::string Line(std::string_view msg, std::string_view key, std::string_view value) {
    std::string fields;
    log_internal::Fields(&fields, key, value, "n", 42);
    return FormatLogLine(LogLevel::kWarning, msg, fields);
}

TEST(Log, EveryLineParsesAsLogfmtWhateverItsValuesHold) {
    for (std::string value : {std::string("plain"), std::string("two words"), std::string("a=b"),
                              std::string("say \"hi\""), std::string("back\\slash"), std::string("line\nbreak"),
                              std::string("tab\there"), std::string(""), std::string("bell\x07"),
                              std::string("/tmp/zh.sock"), std::string("naïve ünïcode")}) {
        std::string line = Line("session refused: \"bad\" key", "why", value);
        auto fields = ParseLogfmt(line);
        ASSERT_FALSE(fields.empty()) << "does not parse: " << line;
        EXPECT_EQ(fields["why"], value) << line;
        EXPECT_EQ(fields["msg"], "session refused: \"bad\" key") << line;
        EXPECT_EQ(fields["level"], "warning") << line;
        EXPECT_EQ(fields["n"], "42") << line;
        EXPECT_EQ(fields.count("ts"), 1u) << line;
    }
}

TEST(Log, PlainValuesStayBareAndMessagesAreQuoted) {
    std::string line = Line("stopping", "socket", "/run/zerohop/zerohop.sock");
    EXPECT_NE(line.find(" level=warning msg=\"stopping\" socket=/run/zerohop/zerohop.sock n=42\n"), std::string::npos)
        << line;
}

}  // namespace
}  // namespace zerohop
