#include "redis/options.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace zerohop::redis {

std::string Endpoint::ToString() const {
    return host.find(':') != std::string::npos ? absl::StrFormat("[%s]:%d", host, port)
                                               : absl::StrFormat("%s:%d", host, port);
}

absl::StatusOr<std::vector<Endpoint>> ParseRedisUrl(absl::string_view url) {
    absl::string_view rest = url;
    if (absl::ConsumePrefix(&rest, "rediss://")) {
        return absl::UnimplementedError("rediss:// (TLS): Debian 12's hiredis has no TLS; use redis://");
    }
    absl::ConsumePrefix(&rest, "redis://");
    while (!rest.empty() && rest.back() == '/') {
        rest.remove_suffix(1);
    }
    std::vector<Endpoint> out;
    for (absl::string_view part : absl::StrSplit(rest, ',')) {
        part = absl::StripAsciiWhitespace(part);
        Endpoint ep;
        absl::string_view port;
        if (absl::ConsumePrefix(&part, "[")) {
            size_t close = part.find(']');
            if (close == absl::string_view::npos) {
                return absl::InvalidArgumentError(absl::StrFormat("redis address \"%s\": no closing ]", part));
            }
            ep.host = std::string(part.substr(0, close));
            part.remove_prefix(close + 1);
            if (!part.empty() && !absl::ConsumePrefix(&part, ":")) {
                return absl::InvalidArgumentError(absl::StrFormat("redis address in \"%s\": bad port", url));
            }
            port = part;
        } else {
            size_t colon = part.rfind(':');
            ep.host = std::string(colon == absl::string_view::npos ? part : part.substr(0, colon));
            port = colon == absl::string_view::npos ? absl::string_view() : part.substr(colon + 1);
        }
        if (ep.host.empty()) {
            return absl::InvalidArgumentError(absl::StrFormat("redis url \"%s\": an address has no host", url));
        }
        if (!port.empty() && (!absl::SimpleAtoi(port, &ep.port) || ep.port <= 0 || ep.port > 65535)) {
            return absl::InvalidArgumentError(absl::StrFormat("redis url \"%s\": bad port \"%s\"", url, port));
        }
        out.push_back(std::move(ep));
    }
    if (out.empty()) {
        return absl::InvalidArgumentError(absl::StrFormat("redis url \"%s\" names no server", url));
    }
    return out;
}

}  // namespace zerohop::redis
