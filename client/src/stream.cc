#include "zerohop/stream.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace zerohop {

std::string StreamLocation::Encode() const { return absl::StrFormat("%d:%d", shard, sequence); }

absl::StatusOr<StreamLocation> StreamLocation::Decode(std::string_view token) {
    size_t colon = token.find(':');
    StreamLocation loc;
    if (colon == std::string_view::npos ||
        !absl::SimpleAtoi(absl::string_view(token.data(), colon), &loc.shard) ||
        !absl::SimpleAtoi(absl::string_view(token.data() + colon + 1, token.size() - colon - 1), &loc.sequence) ||
        loc.shard >= kMaxShards || loc.sequence == 0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "invalid stream location \"%s\": expected \"<shard>:<sequence>\" as returned by seek", token));
    }
    return loc;
}

uint32_t ShardForPartitionKey(std::string_view key, uint32_t shard_count) {
    // FNV-1a, 64-bit: fixed forever, since it decides where records live.
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : key) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return shard_count == 0 ? 0 : static_cast<uint32_t>(h % shard_count);
}

}  // namespace zerohop
