#include "backend/rules.h"

#include <sys/stat.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "backend/backend.h"
#include "base/status_macros.h"
#include "zerohop/status.h"

namespace zerohop {

uint32_t PageLimit(uint32_t asked) { return std::clamp<uint32_t>(asked, 1, kMaxListLimit); }

// ---- the namespace ----------------------------------------------------------------------

absl::Status NotDirectoryError(const Path& path) {
    return absl::FailedPreconditionError(absl::StrFormat("%s is not a directory", path.str()));
}

absl::Status AncestorNotDirectoryError(const Path& path, size_t components) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: %s is not a directory", path.str(), path.Prefix(components)));
}

absl::Status EntryExistsError(const Path& path) {
    return absl::AlreadyExistsError(absl::StrFormat("%s already exists", path.str()));
}

absl::Status CheckWritableParent(const Path& path, ObjectType parent_type) {
    return parent_type == ObjectType::kDirectory ? absl::OkStatus() : StreamParentError(path);
}

absl::Status StreamParentError(const Path& path) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: %s is a stream; its shards are fixed at creation", path.str(), path.Parent().str()));
}

absl::Status DirectoryNotEmptyError(const Path& path) {
    return absl::FailedPreconditionError(absl::StrFormat("%s: directory not empty", path.str()));
}

absl::Status ContainerExistsError(const Path& path) {
    return absl::AlreadyExistsError(absl::StrFormat("%s: container exists", path.str()));
}

absl::Status CheckBelowContainer(const Path& path) {
    if (path.depth() < 2) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "%s: containers are configured in the daemon, not created or changed through the API", path.str()));
    }
    return absl::OkStatus();
}

absl::Status CheckSymlinkTarget(const SymlinkRequest& req) {
    if (req.target.empty() || req.target.size() > kMaxSymlinkTargetBytes ||
        req.target.find('\0') != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: symlink target must be 1..%d bytes without NUL",
                                                          req.path.str(), kMaxSymlinkTargetBytes));
    }
    return absl::OkStatus();
}

absl::Status CheckMknod(const MknodRequest& req) {
    bool device = req.special == S_IFCHR || req.special == S_IFBLK;
    if (!device && req.special != S_IFIFO && req.special != S_IFSOCK) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: mknod makes a FIFO, a character or block device or a unix socket (kind %#o)", req.path.str(),
            req.special));
    }
    if ((req.mode & ~07777u) != 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: mode %#o has bits beyond the permissions", req.path.str(), req.mode));
    }
    if (!device && req.rdev != 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: only a device has a device number", req.path.str()));
    }
    return absl::OkStatus();
}

absl::StatusOr<std::string> SymlinkTargetOf(const Path& path, const ObjectInfo& info) {
    if (info.type != ObjectType::kSymlink) {
        return absl::InvalidArgumentError(absl::StrFormat("%s is not a symlink", path.str()));
    }
    return info.symlink_target;
}

absl::Status CheckRemovableDirectory(const Path& path, ObjectType type) {
    if (type == ObjectType::kStream) {
        return absl::FailedPreconditionError(
            absl::StrFormat("%s is a stream; remove it with delete_stream", path.str()));
    }
    if (type != ObjectType::kDirectory) {
        return NotDirectoryError(path);
    }
    return absl::OkStatus();
}

absl::Status CheckDeletable(const Path& path, ObjectType type) {
    switch (type) {
        case ObjectType::kDirectory:
            return absl::FailedPreconditionError(absl::StrFormat("%s is a directory; use rmdir", path.str()));
        case ObjectType::kStream:
            return absl::FailedPreconditionError(absl::StrFormat("%s is a stream; use delete_stream", path.str()));
        case ObjectType::kShard:
            return absl::FailedPreconditionError(
                absl::StrFormat("%s is a stream shard; delete the whole stream", path.str()));
        case ObjectType::kObject:
        case ObjectType::kSymlink:
        case ObjectType::kSpecial:
            break;
    }
    return absl::OkStatus();
}

absl::Status CheckRenamePaths(const RenameRequest& req) {
    if (req.from.depth() < 2 || req.to.depth() < 2) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "rename %s -> %s: containers are configured in the daemon, not renamed", req.from.str(), req.to.str()));
    }
    if (req.from.Contains(req.to) && req.from != req.to) {
        return absl::InvalidArgumentError(absl::StrFormat("rename %s -> %s: cannot move a directory inside itself",
                                                          req.from.str(), req.to.str()));
    }
    return absl::OkStatus();
}

absl::Status CheckMovable(const RenameRequest& req, const ObjectInfo& from) {
    if (from.type == ObjectType::kShard) {
        return absl::FailedPreconditionError(
            absl::StrFormat("%s is a stream shard; shards cannot move", req.from.str()));
    }
    return absl::OkStatus();
}

absl::Status CheckReplace(const RenameRequest& req, const ObjectInfo& from, const ObjectInfo& to) {
    if (req.no_replace) {
        return absl::AlreadyExistsError(
            absl::StrFormat("rename %s -> %s: destination exists", req.from.str(), req.to.str()));
    }
    auto dir_like = [](ObjectType t) { return t == ObjectType::kDirectory || t == ObjectType::kStream; };
    // Files replace files; an (empty) directory only a directory; streams nothing.
    bool replaceable = dir_like(to.type) ? to.type == ObjectType::kDirectory && from.type == ObjectType::kDirectory
                                         : !dir_like(from.type);
    if (!replaceable) {
        return absl::FailedPreconditionError(absl::StrFormat("rename %s -> %s: cannot replace a %s with a %s",
                                                             req.from.str(), req.to.str(),
                                                             ObjectTypeName(to.type), ObjectTypeName(from.type)));
    }
    return absl::OkStatus();
}

absl::Status DestinationNotEmptyError(const RenameRequest& req) {
    return absl::FailedPreconditionError(
        absl::StrFormat("rename %s -> %s: destination directory not empty", req.from.str(), req.to.str()));
}

// ---- objects ----------------------------------------------------------------------------

absl::StatusOr<std::string> CheckPut(const PutObjectRequest& req) {
    ZH_RETURN_IF_ERROR(ValidateAttributeNames(req.path, req.attributes));
    ZH_ASSIGN_OR_RETURN(auto encoded, EncodeItemAttributes(req.path, req.attributes));
    if (req.path.depth() < 2) {
        return absl::FailedPreconditionError(absl::StrFormat("%s: not an object path", req.path.str()));
    }
    return encoded;
}

absl::Status CheckObjectSize(const Path& path, uint64_t size) {
    if (size > kMaxObjectBytes) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: object larger than the limit of %d bytes", path.str(), kMaxObjectBytes));
    }
    return absl::OkStatus();
}

absl::Status CheckObjectReplaces(const Path& path, const ObjectInfo* existing) {
    if (existing != nullptr && existing->type != ObjectType::kObject) {
        return absl::FailedPreconditionError(absl::StrFormat("%s is a %s; an object cannot replace it", path.str(),
                                                             ObjectTypeName(existing->type)));
    }
    return absl::OkStatus();
}

absl::Status CheckReadable(const Path& path, const ObjectInfo& info) {
    if (info.type == ObjectType::kSymlink) {
        return absl::FailedPreconditionError(
            absl::StrFormat("%s is a symlink to %s; read it with readlink", path.str(), info.symlink_target));
    }
    return CheckWritable(path, info);
}

absl::Status CheckWritable(const Path& path, const ObjectInfo& info) {
    if (info.type != ObjectType::kObject) {
        return absl::FailedPreconditionError(
            absl::StrFormat("%s is a %s, not an object", path.str(), ObjectTypeName(info.type)));
    }
    return absl::OkStatus();
}

absl::Status CheckWriteRange(const Path& path, uint64_t offset, uint64_t length) {
    if (offset > kMaxObjectBytes || length > kMaxObjectBytes - offset) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: write past the object size limit of %d bytes", path.str(), kMaxObjectBytes));
    }
    return absl::OkStatus();
}

absl::Status CheckTruncate(const TruncateRequest& req) {
    if (req.size > kMaxObjectBytes) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: size beyond the object size limit of %d bytes",
                                                          req.path.str(), kMaxObjectBytes));
    }
    return absl::OkStatus();
}

// ---- items ------------------------------------------------------------------------------

absl::Status CheckCondition(const Path& path, const std::string& condition, std::string_view attributes,
                            const ObjectInfo* info) {
    if (condition.empty()) {
        return absl::OkStatus();
    }
    ZH_ASSIGN_OR_RETURN(auto cond, expr::Condition::Parse(condition));
    if (info == nullptr) {
        expr::MapAttributes none(nullptr, path.name(), nullptr);
        return cond.Matches(none) ? absl::OkStatus() : ConditionFailedError(path.str());
    }
    expr::EncodedItemAttributes item(EncodedAttributes(attributes), path.name(), info);
    return cond.Matches(item) ? absl::OkStatus() : ConditionFailedError(path.str());
}

absl::StatusOr<ItemUpdate> ItemUpdate::Parse(const UpdateItemRequest& req) {
    ItemUpdate out;
    ZH_ASSIGN_OR_RETURN(auto update, expr::Update::Parse(req.update));
    out.update_ = std::move(update);
    ZH_ASSIGN_OR_RETURN(auto condition, expr::Condition::Parse(req.condition));
    out.condition_ = std::move(condition);
    if (!req.else_update.empty()) {
        ZH_ASSIGN_OR_RETURN(auto e, expr::Update::Parse(req.else_update));
        out.otherwise_.emplace(std::move(e));
    }
    return out;
}

absl::Status ItemUpdate::Apply(const Path& path, AttributeMap* attrs, const ObjectInfo* info) const {
    expr::MapAttributes item(attrs, path.name(), info);
    if (condition_.Matches(item)) {
        return update_.Apply(attrs, path.name(), info);
    }
    if (otherwise_) {
        return otherwise_->Apply(attrs, path.name(), info);
    }
    return ConditionFailedError(path.str());
}

absl::Status ValidateAttributeNames(const Path& path, const AttributeMap& attrs) {
    for (const auto& [name, value] : attrs) {
        if (absl::Status s = ValidateAttributeName(name); !s.ok()) {
            return absl::InvalidArgumentError(absl::StrFormat("%s: %s", path.str(), s.message()));
        }
    }
    return absl::OkStatus();
}

absl::StatusOr<std::string> EncodeItemAttributes(const Path& path, const AttributeMap& attrs) {
    std::string encoded;
    EncodeAttributes(attrs, &encoded);
    if (encoded.size() > kMaxItemAttributeBytes) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: attributes take %d bytes, the limit is %d", path.str(),
                                                          encoded.size(), kMaxItemAttributeBytes));
    }
    return encoded;
}

absl::Status NotAnItemError(const Path& path, ObjectType type) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s is a %s, not an item", path.str(), ObjectTypeName(type)));
}

bool Scan::InSegment(std::string_view name) const {
    return total_segments <= 1 || ShardForPartitionKey(name, total_segments) == segment;
}

absl::StatusOr<Scan> PlanScan(const GetItemsRequest& req) {
    if (req.total_segments == 0 || req.segment >= req.total_segments) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: segment %d of %d: the segment must be below the segment count", req.path.str(),
                            req.segment, req.total_segments));
    }
    ZH_ASSIGN_OR_RETURN(auto filter, expr::Condition::Parse(req.filter));
    if (req.path.is_root()) {
        return absl::InvalidArgumentError("get_items needs a table (a directory), not the root");
    }
    Scan scan;
    scan.filter = std::move(filter);
    scan.limit = PageLimit(req.limit);
    scan.segment = req.segment;
    scan.total_segments = req.total_segments;
    return scan;
}

absl::Status NotATableError(const Path& path) {
    return absl::FailedPreconditionError(absl::StrFormat("%s is not a table (a directory)", path.str()));
}

absl::StatusOr<std::optional<Item>> ScanMatch(const Scan& scan, const std::vector<std::string>& names,
                                             std::string_view name, std::string_view encoded, const ObjectInfo& info) {
    if (info.type != ObjectType::kObject) {
        return std::nullopt;
    }
    EncodedAttributes attrs(encoded);
    ZH_RETURN_IF_ERROR(attrs.Validate());
    expr::EncodedItemAttributes item(attrs, name, &info);
    if (!scan.filter.Matches(item)) {
        return std::nullopt;
    }
    ZH_ASSIGN_OR_RETURN(auto projected, ProjectAttributes(encoded, names, name, info));
    return Item{std::string(name), info, std::move(projected)};
}

absl::Status ValidateMetadata(const SetMetadataRequest& req) {
    for (auto [name, t] : {std::pair{"mtime", req.mtime}, std::pair{"atime", req.atime}}) {
        if (t && (!t->InNanosRange() || t->nsecs < 0 || t->nsecs >= 1'000'000'000)) {
            return absl::InvalidArgumentError(
                absl::StrFormat("%s: %s %d.%09d is outside the years 1678..2262 that the store keeps", req.path.str(),
                                name, t->secs, t->nsecs));
        }
    }
    return absl::OkStatus();
}

void ApplyMetadata(const SetMetadataRequest& req, Timestamp now, ObjectInfo* info) {
    if (req.mode) {
        info->mode = *req.mode & 07777;
    }
    if (req.uid) {
        info->uid = *req.uid;
    }
    if (req.gid) {
        info->gid = *req.gid;
    }
    if (req.mtime) {
        info->mtime = *req.mtime;
    }
    if (req.atime) {
        info->atime = *req.atime;
    }
    info->ctime = now;
}

absl::Status ValidateStream(const CreateStreamRequest& req) {
    if (req.shard_count == 0 || req.shard_count > kMaxShards) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: shard count %d must be 1..%d", req.path.str(), req.shard_count, kMaxShards));
    }
    if (req.retention_secs <= 0 || req.retention_secs > kMaxRetentionSecs) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: retention %d s must be 1..%d seconds", req.path.str(),
                                                          req.retention_secs, kMaxRetentionSecs));
    }
    return absl::OkStatus();
}

absl::Status NotAStreamError(const Path& path, ObjectType type) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s is a %s, not a stream", path.str(), ObjectTypeName(type)));
}

absl::Status CheckShard(uint32_t shard, uint32_t shard_count) {
    if (shard >= shard_count) {
        return absl::InvalidArgumentError(
            absl::StrFormat("shard %d does not exist; the stream has shards 0..%d", shard, shard_count - 1));
    }
    return absl::OkStatus();
}

absl::StatusOr<StreamLocation> SeekIn(const SeekRequest& req, uint64_t first, uint64_t last,
                                      absl::FunctionRef<absl::StatusOr<uint64_t>()> by_time) {
    StreamLocation loc{req.shard, first};
    switch (req.type) {
        case SeekType::kEarliest:
            break;
        case SeekType::kLatest:
            loc.sequence = last + 1;
            break;
        case SeekType::kSequence:
            if (req.sequence == 0 || req.sequence > last + 1) {
                return absl::InvalidArgumentError(
                    absl::StrFormat("%s shard %d: sequence %d is outside 1..%d (the next one to be written)",
                                    req.path.str(), req.shard, req.sequence, last + 1));
            }
            loc.sequence = std::max(req.sequence, first);
            break;
        case SeekType::kTime: {
            ZH_ASSIGN_OR_RETURN(auto seq, by_time());
            loc.sequence = seq;
            break;
        }
        default:
            return absl::InvalidArgumentError(
                absl::StrFormat("%s: unknown seek type %d", req.path.str(), static_cast<int>(req.type)));
    }
    return loc;
}

std::vector<RecordResult> PlaceRecords(const std::vector<RecordInput>& records, uint32_t shard_count,
                                       std::atomic<uint64_t>* round_robin) {
    std::vector<RecordResult> results(records.size());
    for (size_t i = 0; i < records.size(); ++i) {
        const RecordInput& r = records[i];
        RecordResult& out = results[i];
        if (r.data.size() > kMaxRecordBytes) {
            out.status = absl::InvalidArgumentError(
                absl::StrFormat("record %d: %d bytes, the limit is %d", i, r.data.size(), kMaxRecordBytes));
            continue;
        }
        if (r.partition_key.size() > kMaxPartitionKeyBytes || r.client_info.size() > kMaxClientInfoBytes) {
            out.status = absl::InvalidArgumentError(absl::StrFormat(
                "record %d: partition key (limit %d bytes) or client info (limit %d bytes) too long", i,
                kMaxPartitionKeyBytes, kMaxClientInfoBytes));
            continue;
        }
        if (r.shard) {
            if (*r.shard >= shard_count) {
                out.status = absl::InvalidArgumentError(absl::StrFormat(
                    "record %d: shard %d does not exist; the stream has shards 0..%d", i, *r.shard, shard_count - 1));
                continue;
            }
            out.shard = *r.shard;
        } else if (!r.partition_key.empty()) {
            out.shard = ShardForPartitionKey(r.partition_key, shard_count);
        } else {
            out.shard = static_cast<uint32_t>(round_robin->fetch_add(1, std::memory_order_relaxed) % shard_count);
        }
    }
    return results;
}

}  // namespace zerohop
