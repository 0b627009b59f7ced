#pragma once
// The rules every backend applies alike, in one place so that backends cannot drift apart:
// conditions on an entry, item updates, metadata changes, stream shapes and where records go.
//
//   auto update = ItemUpdate::Parse(req);           // update, condition, else_update
//   absl::Status s = update->Apply(req.path, &attrs, info);
//   std::vector<RecordResult> placed = PlaceRecords(req.records, shards, &round_robin);

#include <atomic>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "expr/expression.h"
#include "zerohop/operations.h"

namespace zerohop {

inline constexpr int64_t kMaxRetentionSecs = int64_t{10} * 366 * 24 * 3600;
inline constexpr size_t kMaxPartitionKeyBytes = 256;
inline constexpr size_t kMaxClientInfoBytes = 4096;

// OK when `condition` (empty: always) holds for the entry at `path` (its encoded user
// attributes and info), or for no entry when `info` is null; ConditionFailedError when not.
absl::Status CheckCondition(const Path& path, const std::string& condition, std::string_view attributes,
                            const ObjectInfo* info);

// update_item's three parts, parsed once.
class ItemUpdate {
public:
    static absl::StatusOr<ItemUpdate> Parse(const UpdateItemRequest& req);
    // The update when the condition holds, else the else-update, else ConditionFailedError.
    absl::Status Apply(const Path& path, AttributeMap* attrs, const ObjectInfo* info) const;

private:
    expr::Update update_;
    expr::Condition condition_;
    std::optional<expr::Update> otherwise_;
};

// Attribute names of a put, each checked.
absl::Status ValidateAttributeNames(const Path& path, const AttributeMap& attrs);

// An item's attributes encoded, within kMaxItemAttributeBytes.
absl::StatusOr<std::string> EncodeItemAttributes(const Path& path, const AttributeMap& attrs);

// get_items: the segment is one of the segments.
absl::Status ValidateSegment(const GetItemsRequest& req);

// set_metadata: the request is sound; then what it changes (ctime becomes `now`).
absl::Status ValidateMetadata(const SetMetadataRequest& req);
void ApplyMetadata(const SetMetadataRequest& req, Timestamp now, ObjectInfo* info);

// create_stream: shard count and retention within their bounds.
absl::Status ValidateStream(const CreateStreamRequest& req);

// Where each record of a batch goes (`shard` if given, else the hash of its partition key,
// else round robin), or its own error (too large, a shard that does not exist).
std::vector<RecordResult> PlaceRecords(const std::vector<RecordInput>& records, uint32_t shard_count,
                                       std::atomic<uint64_t>* round_robin);

}  // namespace zerohop
