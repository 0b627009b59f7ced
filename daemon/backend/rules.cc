#include "backend/rules.h"

#include "absl/strings/str_format.h"
#include "zerohop/status.h"

namespace zerohop {

absl::Status CheckCondition(const Path& path, const std::string& condition, std::string_view attributes,
                            const ObjectInfo* info) {
    if (condition.empty()) {
        return absl::OkStatus();
    }
    auto cond = expr::Condition::Parse(condition);
    if (!cond.ok()) {
        return cond.status();
    }
    if (info == nullptr) {
        expr::MapAttributes none(nullptr, path.name(), nullptr);
        return cond->Matches(none) ? absl::OkStatus() : ConditionFailedError(path.str());
    }
    expr::EncodedItemAttributes item(EncodedAttributes(attributes), path.name(), info);
    return cond->Matches(item) ? absl::OkStatus() : ConditionFailedError(path.str());
}

absl::StatusOr<ItemUpdate> ItemUpdate::Parse(const UpdateItemRequest& req) {
    ItemUpdate out;
    auto update = expr::Update::Parse(req.update);
    if (!update.ok()) {
        return update.status();
    }
    out.update_ = std::move(*update);
    auto condition = expr::Condition::Parse(req.condition);
    if (!condition.ok()) {
        return condition.status();
    }
    out.condition_ = std::move(*condition);
    if (!req.else_update.empty()) {
        auto e = expr::Update::Parse(req.else_update);
        if (!e.ok()) {
            return e.status();
        }
        out.otherwise_.emplace(std::move(*e));
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

absl::Status ValidateSegment(const GetItemsRequest& req) {
    if (req.total_segments == 0 || req.segment >= req.total_segments) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: segment %d of %d: the segment must be below the segment count", req.path.str(),
                            req.segment, req.total_segments));
    }
    return absl::OkStatus();
}

absl::Status ValidateMetadata(const SetMetadataRequest& req) {
    if (req.mtime && (!req.mtime->InNanosRange() || req.mtime->nsecs < 0 || req.mtime->nsecs >= 1'000'000'000)) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: mtime %d.%09d is outside the years 1678..2262 that the store keeps", req.path.str(),
                            req.mtime->secs, req.mtime->nsecs));
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
