#pragma once
// The embedded store's RocksDB layout.
//
// Column family "default" (metadata):
//   "M" "next_id"                 -> fixed64: ids below this may have been handed out
//   "D" be64(parent id) name      -> Entry: a directory entry holding the whole entry
//                                    (no hard links, so the entry lives with its name)
//   "F" be64(data id)             -> "": the object file objects/<data id> is referenced
//   "Q" be64(shard id)            -> ShardState: a shard's sequence numbers and retention
//   "T" be64(directory id)        -> DirStats: when an entry was last added to or removed
//                                    from the directory, and how many directories and
//                                    streams it holds. Changed by merge operands (DirStats
//                                    too: the later times, the sum of the counts) written
//                                    with the change, so that changes in one directory need
//                                    neither read nor rewrite its entry
//   "M" "subdirs"                 -> "": the counts of stores made before they were kept
//                                    have been taken (once, at open)
// Column family "data": be64(object id) -> the bytes of an inline object.
// Column family "records": be64(shard id) be64(sequence) -> Record.
//
// Container roots are entries under parent id 0. Entries below a directory are keyed by
// the directory's id, so renaming a directory rewrites one key.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "zerohop/object.h"
#include "zerohop/value.h"

namespace rocksdb {
class MergeOperator;
}

namespace zerohop::embedded {

inline constexpr char kNextIdKey[] = "Mnext_id";

std::string EntryKey(uint64_t parent, std::string_view name);
// The same key in a buffer on the stack, for reads on the hot path.
class EntryKeyBuffer {
public:
    EntryKeyBuffer(uint64_t parent, std::string_view name);
    std::string_view view() const { return std::string_view(buf_, size_); }

private:
    char buf_[1 + 8 + 255];
    size_t size_;
};
// The prefix of every entry below `parent`, followed by `name_prefix`.
std::string EntryPrefix(uint64_t parent, std::string_view name_prefix = {});
std::string FileKey(uint64_t data_id);
std::string ShardStateKey(uint64_t shard_id);
inline constexpr char kSubdirsCountedKey[] = "Msubdirs";
std::string DirStatsKey(uint64_t dir_id);

// A directory's "T" value, or a merge operand (subdirs then a change of the count).
struct DirStats {
    static constexpr int64_t kNoTime = INT64_MIN;  // (an operand that changes no time)
    int64_t mtime_ns = kNoTime;
    int64_t ctime_ns = kNoTime;
    int64_t subdirs = 0;
};
std::string EncodeDirStats(const DirStats& d);
absl::StatusOr<DirStats> DecodeDirStats(std::string_view bytes);
// `later` applied over `earlier` (as value or operand): the later of each time, counts added.
DirStats MergeDirStats(const DirStats& earlier, const DirStats& later);
// The default column family's merge operator ("zerohop.DirStats"): whatever opens the
// database (a tool, a test) needs it to read the "T" records or replay a log holding them.
std::shared_ptr<rocksdb::MergeOperator> NewDirStatsMerge();
std::string DataKey(uint64_t object_id);
std::string RecordKey(uint64_t shard_id, uint64_t sequence);

// One directory entry.
struct Entry {
    ObjectInfo info;            // info.id, type, size, mode, owner, times, symlink target
    uint64_t data_id = 0;       // objects: 0 = bytes inline in "data", else objects/<data_id>
    // Objects in a file that was handed out (open_object_file, for the kernel to read and
    // write straight): from then on the file's size and times are the object's, not info's.
    bool sized_by_file = false;
    uint32_t shard_count = 0;   // streams
    int64_t retention_secs = 0; // streams
    std::string attributes;     // encoded AttributeMap

    bool is_dir_like() const {
        return info.type == ObjectType::kDirectory || info.type == ObjectType::kStream;
    }
};

// A fresh entry: created now (mtime = ctime), owned by uid/gid.
Entry NewEntry(ObjectType type, uint64_t id, uint32_t mode, uint32_t uid, uint32_t gid, Timestamp now);

std::string EncodeEntry(const Entry& e);
absl::StatusOr<Entry> DecodeEntry(std::string_view bytes);
// Decodes everything but the attributes, which stay as a view into `bytes`. For scans.
absl::Status DecodeEntryHeader(std::string_view bytes, Entry* e, std::string_view* attributes);

struct ShardState {
    uint64_t first_sequence = 1;  // records below this were reclaimed
    uint64_t last_sequence = 0;   // 0: empty
    int64_t last_arrival_ns = 0;
    int64_t retention_secs = 0;
};

std::string EncodeShardState(const ShardState& s);
absl::StatusOr<ShardState> DecodeShardState(std::string_view bytes);

std::string EncodeRecord(int64_t arrival_ns, std::string_view partition_key, std::string_view client_info,
                         std::string_view data);
absl::Status DecodeRecord(std::string_view bytes, int64_t* arrival_ns, std::string_view* partition_key,
                          std::string_view* client_info, std::string_view* data);
// Just the arrival time, for binary searches by time.
absl::StatusOr<int64_t> DecodeRecordArrival(std::string_view bytes);

}  // namespace zerohop::embedded
