// The redis backend's streams: create, describe, delete; records appended by one script
// with dense sequence numbers; seek and get_records over the shard's Redis stream.

#include <algorithm>

#include "backend/rules.h"
#include "base/status_macros.h"
#include "redis/internal/store.h"
#include "zerohop/status.h"

namespace zerohop::redis {

absl::StatusOr<ObjectInfo> Store::CreateStream(const CreateStreamRequest& req) {
    ZH_RETURN_IF_ERROR(ValidateStream(req));
    return Retrying(req.path, [&]() -> absl::StatusOr<ObjectInfo> {
        ZH_ASSIGN_OR_RETURN(auto r, Resolve(req.path));
        ZH_RETURN_IF_ERROR(CheckWritableParent(req.path, r));
        if (r.entry) {
            return EntryExistsError(req.path);
        }
        // The stream's id is followed by its shards' ids: shard k is id + 1 + k.
        ZH_ASSIGN_OR_RETURN(auto base, NewIds(uint64_t{req.shard_count} + 1));
        ObjectInfo stream = NewInfo(ObjectType::kStream, base, 0755, req.caller);
        auto fields = NewFields(ObjectType::kStream, base, stream);
        fields["x"] = absl::StrCat(req.shard_count, " ", req.retention_secs);
        Txn t(r.tag + "ver");
        r.CheckChain(t);
        t.CheckVersion(r.key, "");
        t.Replace(r.key, fields);
        t.ZAdd(IndexKey(r.tag, r.parent, req.path.name()), std::string(req.path.name()));
        for (uint32_t k = 0; k < req.shard_count; ++k) {
            ObjectInfo shard = NewInfo(ObjectType::kShard, base + 1 + k, 0644, req.caller);
            std::string name = absl::StrCat(k);
            t.Replace(EntryKey(r.tag, base, name), NewFields(ObjectType::kShard, shard.id, shard));
            t.ZAdd(IndexKey(r.tag, base, name), name);
        }
        t.AddSubdirs(r.ParentKey(), +1);
        t.TouchDir(r.ParentKey(), DirTimes(stream.mtime));
        ZH_ASSIGN_OR_RETURN(auto ok, Commit(t));
        if (ok) {
            return stream;
        }
        return Retry();
    });
}

absl::StatusOr<std::pair<Store::Resolved, Entry>> Store::GetStream(const Path& path) {
    ZH_ASSIGN_OR_RETURN(auto r, Resolve(path));
    Entry* e = Existing(r);
    if (e == nullptr) {
        return PathNotFoundError(path.str());
    }
    if (e->info.type != ObjectType::kStream) {
        return NotAStreamError(path, e->info.type);
    }
    Entry stream = std::move(*e);
    return std::pair{std::move(r), std::move(stream)};
}

absl::StatusOr<StreamDescription> Store::DescribeStream(const Path& path) {
    ZH_ASSIGN_OR_RETURN(auto s, GetStream(path));
    return StreamDescription{s.second.shard_count, s.second.retention_secs};
}

absl::Status Store::DeleteStream(const Path& path) {
    return Retrying(path, [&]() -> absl::Status {
        ZH_ASSIGN_OR_RETURN(auto s, GetStream(path));
        auto& [r, e] = s;
        Txn t(r.tag + "ver");
        r.CheckChain(t);
        t.CheckVersion(r.key, e.version);
        t.Del(r.key);
        t.ZRem(IndexKey(r.tag, r.parent, path.name()), std::string(path.name()));
        t.AddSubdirs(r.ParentKey(), -1);
        t.TouchDir(r.ParentKey(), DirTimes(Now()));
        for (uint32_t b = 0; b < kIndexBuckets; ++b) {
            t.Del(absl::StrCat(IndexPrefix(r.tag, e.info.id), b));
        }
        for (uint32_t k = 0; k < e.shard_count; ++k) {
            uint64_t sid = e.info.id + 1 + k;
            t.Del(EntryKey(r.tag, e.info.id, absl::StrCat(k)));
            t.Del(absl::StrCat(r.tag, "s:", sid));
            t.Del(absl::StrCat(r.tag, "q:", sid));
        }
        ZH_ASSIGN_OR_RETURN(auto ok, Commit(t));
        if (ok) {
            return absl::OkStatus();
        }
        return Retry();
    });
}

absl::StatusOr<std::vector<RecordResult>> Store::PutRecords(const PutRecordsRequest& req) {
    return Retrying(req.path, [&]() -> absl::StatusOr<std::vector<RecordResult>> {
        ZH_ASSIGN_OR_RETURN(auto s, GetStream(req.path));
        auto& [r, stream] = s;
        std::vector<RecordResult> results = PlaceRecords(req.records, stream.shard_count, &round_robin_);
        std::vector<std::string> args = {stream.version, r.tag, std::to_string(Now().ToNanos() / 1000), "0"};
        size_t n = 0;
        std::vector<size_t> placed;
        for (size_t i = 0; i < req.records.size(); ++i) {
            if (!results[i].status.ok()) {
                continue;
            }
            const RecordInput& rec = req.records[i];
            args.push_back(std::to_string(stream.info.id + 1 + results[i].shard));
            args.push_back(rec.partition_key);
            args.push_back(rec.client_info);
            args.push_back(rec.data);
            placed.push_back(i);
            ++n;
        }
        if (n == 0) {
            return results;
        }
        args[3] = std::to_string(n);
        ZH_ASSIGN_OR_RETURN(auto done, Script(kPutRecordsScript, records_sha_, {r.key}, args, false));
        if (done.type == Reply::Type::kInteger && done.integer == -1) {
            return Retry();  // the stream was replaced since it was resolved
        }
        if (done.type != Reply::Type::kArray || done.elements.size() != 2 * n) {
            return Damaged("a put_records answer");
        }
        for (size_t j = 0; j < n; ++j) {
            results[placed[j]].sequence = static_cast<uint64_t>(done.elements[2 * j].integer);
        }
        return results;
    });
}

absl::StatusOr<Store::OpenedShard> Store::OpenShard(const Path& path, uint32_t shard) {
    ZH_ASSIGN_OR_RETURN(auto s, GetStream(path));
    auto& [r, stream] = s;
    ZH_RETURN_IF_ERROR(CheckShard(shard, stream.shard_count));
    OpenedShard out;
    out.tag = r.tag;
    uint64_t sid = stream.info.id + 1 + shard;
    out.records_key = absl::StrCat(r.tag, "s:", sid);
    ZH_ASSIGN_OR_RETURN(auto q, Call({"HGET", absl::StrCat(r.tag, "q:", sid), "last"}, r.tag, true));
    out.last = ToU64(q.str);
    // Expired records are a prefix (arrival never decreases): the first one still kept.
    int64_t cutoff_us = Now().ToNanos() / 1000 - stream.retention_secs * 1'000'000;
    ZH_ASSIGN_OR_RETURN(auto first, FirstAtOrAfter(out.records_key, cutoff_us, 1, out.last + 1));
    out.first_retained = first;
    if (out.first_retained > 1) {
        // Expired records go for good (lazily: when their shard is read). Repeating it
        // does no harm, and nobody waits for it.
        redis_->Send({"XTRIM", out.records_key, "MINID", absl::StrCat(out.first_retained, "-0")},
                     {.key = out.tag, .safe_to_retry = true}, [](absl::StatusOr<Reply>) {});
    }
    return out;
}

absl::StatusOr<uint64_t> Store::FirstAtOrAfter(const std::string& key, int64_t t_us, uint64_t lo, uint64_t hi) {
    if (lo >= hi) {
        return lo;
    }
    ZH_ASSIGN_OR_RETURN(auto r, Script(kSeekTimeScript, seek_sha_, {key},
                                       {std::to_string(t_us), std::to_string(lo), std::to_string(hi)}, true));
    return ToU64(r.str);
}

absl::StatusOr<StreamLocation> Store::Seek(const SeekRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto shard, OpenShard(req.path, req.shard));
    auto by_time = [&]() -> absl::StatusOr<uint64_t> {
        // Arrival is kept in microseconds: a time inside a microsecond rounds up.
        int64_t ns = req.time.ToNanos();
        int64_t us = ns / 1000 + (ns % 1000 > 0 ? 1 : 0);
        return FirstAtOrAfter(shard.records_key, us, shard.first_retained, shard.last + 1);
    };
    return SeekIn(req, shard.first_retained, shard.last, by_time);
}

absl::StatusOr<GetRecordsResult> Store::GetRecords(const GetRecordsRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto shard, OpenShard(req.path, req.location.shard));
    GetRecordsResult out;
    uint64_t seq = std::max(req.location.sequence, shard.first_retained);
    uint32_t limit = PageLimit(req.limit);
    uint64_t bytes = 0;
    out.next = StreamLocation{req.location.shard, seq};
    if (seq <= shard.last) {
        ZH_ASSIGN_OR_RETURN(auto r, Call({"XRANGE", shard.records_key, absl::StrCat(seq, "-0"),
                                          absl::StrCat(shard.last, "-0"), "COUNT", std::to_string(limit)},
                                         shard.tag, true));
        for (const Reply& item : r.elements) {
            if (item.elements.size() != 2) {
                return Damaged("a stream record");
            }
            StreamRecord rec;
            rec.shard = req.location.shard;
            rec.sequence = ToU64(std::string_view(item.elements[0].str).substr(0, item.elements[0].str.find('-')));
            const auto& f = item.elements[1].elements;
            for (size_t i = 0; i + 1 < f.size(); i += 2) {
                const std::string& name = f[i].str;
                if (name == "t") {
                    rec.arrival = Timestamp::FromNanos(static_cast<int64_t>(ToU64(f[i + 1].str)) * 1000);
                } else if (name == "k") {
                    rec.partition_key = f[i + 1].str;
                } else if (name == "c") {
                    rec.client_info = f[i + 1].str;
                } else if (name == "d") {
                    rec.data = f[i + 1].str;
                }
            }
            if (!out.records.empty() && bytes + rec.data.size() > req.max_bytes) {
                break;
            }
            bytes += rec.data.size();
            out.next.sequence = rec.sequence + 1;
            out.records.push_back(std::move(rec));
        }
    }
    out.behind = shard.last >= out.next.sequence ? shard.last - out.next.sequence + 1 : 0;
    return out;
}

}  // namespace zerohop::redis
