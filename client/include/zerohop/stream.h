#pragma once
// Stream records and locations.
//
// A stream has N shards; each shard is an append-only log whose records carry a sequence
// number (per shard, from 1, dense, increasing), their arrival time, data, an optional
// partition key and optional client info. A StreamLocation is a position in one shard:
// the sequence number of the next record to read. It encodes to an opaque token.
//
//   zerohop::StreamLocation loc{.shard = 2, .sequence = 17};
//   std::string token = loc.Encode();
//   auto back = zerohop::StreamLocation::Decode(token);

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zerohop/value.h"

namespace zerohop {

inline constexpr uint32_t kMaxShards = 4096;

struct StreamRecord {
    uint32_t shard = 0;
    uint64_t sequence = 0;
    Timestamp arrival;
    std::string data;
    std::string partition_key;
    std::string client_info;
};

// One record of a put_records batch. Placement: `shard` if set, else the hash of
// `partition_key` if not empty, else round robin.
struct RecordInput {
    std::string data;
    std::optional<uint32_t> shard;
    std::string partition_key;
    std::string client_info;
};

// The outcome of one record of a batch: where it went, or its own error.
struct RecordResult {
    absl::Status status;
    uint32_t shard = 0;
    uint64_t sequence = 0;
};

struct StreamDescription {
    uint32_t shard_count = 0;
    int64_t retention_secs = 0;
};

enum class SeekType : uint8_t {
    kEarliest = 0,  // the oldest retained record
    kLatest = 1,    // just after the newest record: only records put from now on
    kSequence = 2,  // the record with this sequence number (or the oldest retained after it)
    kTime = 3,      // the first record that arrived at or after this time
};

struct StreamLocation {
    uint32_t shard = 0;
    uint64_t sequence = 1;  // the next record to read

    std::string Encode() const;
    static absl::StatusOr<StreamLocation> Decode(std::string_view token);
    friend bool operator==(const StreamLocation&, const StreamLocation&) = default;
};

// Placement of a record by partition key: stable across processes and versions.
uint32_t ShardForPartitionKey(std::string_view key, uint32_t shard_count);

}  // namespace zerohop
