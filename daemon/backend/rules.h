#pragma once
// The rules every backend applies alike, in one place so that backends cannot drift apart:
// what each request may ask, which entry types each operation takes, conditions, item
// updates, metadata changes, scans, stream shapes, seeks and where records go. A backend
// decides how to store; this file decides what is allowed and how a refusal is worded.
//
//   ZH_RETURN_IF_ERROR(CheckDeletable(req.path, entry.info.type));
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
#include "absl/functional/function_ref.h"
#include "expr/expression.h"
#include "zerohop/operations.h"

namespace zerohop {

inline constexpr int64_t kMaxRetentionSecs = int64_t{10} * 366 * 24 * 3600;
inline constexpr size_t kMaxPartitionKeyBytes = 256;
inline constexpr size_t kMaxClientInfoBytes = 4096;
// Entries a get_items page looks at, at most, whatever its filter keeps.
inline constexpr size_t kMaxScanPerPage = 20000;

// A listing's or a page's limit as asked, within 1..kMaxListLimit.
uint32_t PageLimit(uint32_t asked);

// ---- the namespace ----------------------------------------------------------------------

absl::Status NotDirectoryError(const Path& path);
// The first `components` components of `path` name something that is not a directory.
absl::Status AncestorNotDirectoryError(const Path& path, size_t components);
absl::Status DirectoryNotEmptyError(const Path& path);
// A create where something is already.
absl::Status EntryExistsError(const Path& path);
// New entries go into directories: a stream's shards are fixed at its creation.
absl::Status CheckWritableParent(const Path& path, ObjectType parent_type);
absl::Status StreamParentError(const Path& path);
// mkdir of a container's own path.
absl::Status ContainerExistsError(const Path& path);
// A change below a container: a container itself is configured in the daemon, not created,
// removed or changed through the API.
absl::Status CheckBelowContainer(const Path& path);

// symlink: 1..kMaxSymlinkTargetBytes, no NUL.
absl::Status CheckSymlinkTarget(const SymlinkRequest& req);
// A mknod's kind is a FIFO, a character or block device or a unix socket (regular files
// are objects, made by put_object), its mode permission bits only, and only devices carry
// a device number.
absl::Status CheckMknod(const MknodRequest& req);
// readlink: the target of a symlink, and nothing else.
absl::StatusOr<std::string> SymlinkTargetOf(const Path& path, const ObjectInfo& info);
// rmdir takes directories (not streams).
absl::Status CheckRemovableDirectory(const Path& path, ObjectType type);
// delete takes objects and symlinks (not directories, streams or shards).
absl::Status CheckDeletable(const Path& path, ObjectType type);

// rename: both paths below a container, a directory not into itself.
absl::Status CheckRenamePaths(const RenameRequest& req);
// rename: shards never move.
absl::Status CheckMovable(const RenameRequest& req, const ObjectInfo& from);
// rename of `from` onto the entry `to` already there: no_replace refuses it, and only a
// directory replaces a directory (an empty one: the backend checks that, and words it with
// DestinationNotEmptyError).
absl::Status CheckReplace(const RenameRequest& req, const ObjectInfo& from, const ObjectInfo& to);
absl::Status DestinationNotEmptyError(const RenameRequest& req);

// ---- objects ----------------------------------------------------------------------------

// put_object: the checks every put makes before its bytes; then its attributes encoded.
absl::StatusOr<std::string> CheckPut(const PutObjectRequest& req);
// A put's bytes so far, within kMaxObjectBytes.
absl::Status CheckObjectSize(const Path& path, uint64_t size);
// A put replaces objects only (`existing` null: nothing there).
absl::Status CheckObjectReplaces(const Path& path, const ObjectInfo* existing);
// get_object reads objects only (a symlink says what to do instead).
absl::Status CheckReadable(const Path& path, const ObjectInfo& info);
// write_object, append and truncate change objects only.
absl::Status CheckWritable(const Path& path, const ObjectInfo& info);
// A write of `length` bytes at `offset` stays within kMaxObjectBytes.
absl::Status CheckWriteRange(const Path& path, uint64_t offset, uint64_t length);
absl::Status CheckTruncate(const TruncateRequest& req);

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

absl::Status NotAnItemError(const Path& path, ObjectType type);

// get_items: what a page of a scan needs, its request checked (a table, not the root; a
// segment that is one of the segments; a filter that parses).
struct Scan {
    expr::Condition filter;
    uint32_t limit = 0;
    // Whether the item `name` belongs to the requested segment (a hash of the name that
    // every process computes alike).
    bool InSegment(std::string_view name) const;
    uint32_t segment = 0, total_segments = 1;
};
absl::StatusOr<Scan> PlanScan(const GetItemsRequest& req);
absl::Status NotATableError(const Path& path);
// The item of the entry `name` if the scan keeps it (an object matching the filter), with
// the attributes `names` projects; nullopt if it does not; an error if its attributes are
// corrupt.
absl::StatusOr<std::optional<Item>> ScanMatch(const Scan& scan, const std::vector<std::string>& names,
                                             std::string_view name, std::string_view encoded, const ObjectInfo& info);

// set_metadata: the request is sound; then what it changes (ctime becomes `now`).
absl::Status ValidateMetadata(const SetMetadataRequest& req);
void ApplyMetadata(const SetMetadataRequest& req, Timestamp now, ObjectInfo* info);

// create_stream: shard count and retention within their bounds.
absl::Status ValidateStream(const CreateStreamRequest& req);
absl::Status NotAStreamError(const Path& path, ObjectType type);
// A shard of a stream of `shard_count` shards.
absl::Status CheckShard(uint32_t shard, uint32_t shard_count);

// seek: where reading starts in a shard whose retained records are [first, last] (none when
// first > last). `by_time` finds the first record at or after req.time, from `first`.
absl::StatusOr<StreamLocation> SeekIn(const SeekRequest& req, uint64_t first, uint64_t last,
                                      absl::FunctionRef<absl::StatusOr<uint64_t>()> by_time);

// Where each record of a batch goes (`shard` if given, else the hash of its partition key,
// else round robin), or its own error (too large, a shard that does not exist).
std::vector<RecordResult> PlaceRecords(const std::vector<RecordInput>& records, uint32_t shard_count,
                                       std::atomic<uint64_t>* round_robin);

}  // namespace zerohop
