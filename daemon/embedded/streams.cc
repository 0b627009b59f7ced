// The embedded store: streams, their shards and records, and retention.

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/rules.h"
#include "base/status_macros.h"
#include "embedded/internal/store.h"
#include "rocksdb/write_batch.h"
#include "wire/codec.h"
#include "zerohop/status.h"

namespace zerohop {

using embedded::EncodeEntry;
using embedded::ToSlice;
using embedded::ToView;
using embedded::EntryKey;
using embedded::LockMode;
using embedded::LockSet;
using embedded::RecordKey;
using embedded::ShardStateKey;


absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::CreateStream(const CreateStreamRequest& req) {
    ZH_RETURN_IF_ERROR(ValidateStream(req));
    return WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        // The stream's id is followed by its shards' ids: shard k is id + 1 + k.
        ZH_ASSIGN_OR_RETURN(auto base, PrepareCreate(req.path, loc, uint64_t{req.shard_count} + 1));
        Timestamp now = Now();
        Entry stream = embedded::NewEntry(ObjectType::kStream, base, 0755, req.caller.uid, req.caller.gid, now);
        stream.shard_count = req.shard_count;
        stream.retention_secs = req.retention_secs;
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(stream));
        TouchDir(&batch, loc.parent, now, +1);
        for (uint32_t k = 0; k < req.shard_count; ++k) {
            Entry shard =
                embedded::NewEntry(ObjectType::kShard, base + 1 + k, 0644, req.caller.uid, req.caller.gid, now);
            batch.Put(meta_, EntryKey(base, absl::StrCat(k)), EncodeEntry(shard));
            ShardState st;
            st.retention_secs = req.retention_secs;
            batch.Put(meta_, ShardStateKey(shard.info.id), embedded::EncodeShardState(st));
        }
        ZH_RETURN_IF_ERROR(Commit(&batch));
        return stream.info;
    });
}

absl::StatusOr<embedded::Entry> EmbeddedBackend::Store::GetStream(const Path& path) {
    ZH_ASSIGN_OR_RETURN(auto loc, Locate(path));
    ZH_ASSIGN_OR_RETURN(auto e, GetExisting(path, loc));
    if (e.info.type != ObjectType::kStream) {
        return NotAStreamError(path, e.info.type);
    }
    return e;
}

absl::StatusOr<uint64_t> EmbeddedBackend::Store::ShardIdOf(const Entry& stream, uint32_t shard) {
    ZH_RETURN_IF_ERROR(CheckShard(shard, stream.shard_count));
    return stream.info.id + 1 + shard;
}

absl::StatusOr<StreamDescription> EmbeddedBackend::Store::DescribeStream(const Path& path) {
    ZH_ASSIGN_OR_RETURN(auto e, GetStream(path));
    return StreamDescription{e.shard_count, e.retention_secs};
}

absl::Status EmbeddedBackend::Store::DeleteStream(const Path& path) {
    uint64_t first_shard = 0, shard_count = 0;
    absl::Status s = WithEntryLocked(path, [&](const Location& loc) -> absl::Status {
        ZH_ASSIGN_OR_RETURN(auto e, GetExisting(path, loc));
        if (e.info.type != ObjectType::kStream) {
            return NotAStreamError(path, e.info.type);
        }
        rocksdb::WriteBatch batch;
        batch.Delete(meta_, EntryKey(loc.parent, path.name()));
        TouchDir(&batch, loc.parent, Now(), -1);
        first_shard = e.info.id + 1;
        shard_count = e.shard_count;
        for (uint32_t k = 0; k < e.shard_count; ++k) {
            uint64_t sid = first_shard + k;
            batch.Delete(meta_, EntryKey(e.info.id, absl::StrCat(k)));
            batch.Delete(meta_, ShardStateKey(sid));
        }
        batch.DeleteRange(records_, RecordKey(first_shard, 0), RecordKey(first_shard + shard_count, 0));
        absl::Status committed = Commit(&batch);
        if (committed.ok()) {
            dirs_.Invalidate();  // the stream was a directory of shards
        }
        return committed;
    });
    ZH_RETURN_IF_ERROR(s);
    {
        absl::MutexLock lock(&shards_mu_);
        for (uint64_t k = 0; k < shard_count; ++k) {
            shards_.erase(first_shard + k);
        }
    }
    std::string begin = RecordKey(first_shard, 0), end = RecordKey(first_shard + shard_count, 0);
    rocksdb::Slice b(begin), e(end);
    (void)db_->CompactRange(rocksdb::CompactRangeOptions(), records_, &b, &e);  // reclaim space now; best effort
    return absl::OkStatus();
}

EmbeddedBackend::Store::ShardSlot* EmbeddedBackend::Store::Slot(uint64_t shard_id) {
    absl::MutexLock lock(&shards_mu_);
    auto& slot = shards_[shard_id];
    if (!slot) {
        slot = std::make_unique<ShardSlot>();
    }
    return slot.get();
}

absl::Status EmbeddedBackend::Store::LoadSlot(uint64_t shard_id, ShardSlot* slot) {
    if (slot->loaded) {
        return absl::OkStatus();
    }
    std::string bytes;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, ShardStateKey(shard_id), &bytes);
    if (s.IsNotFound()) {
        return absl::NotFoundError("the stream shard no longer exists (the stream was deleted)");
    }
    if (!s.ok()) {
        return FromRocks(s, "read shard state");
    }
    ZH_ASSIGN_OR_RETURN(auto st, embedded::DecodeShardState(bytes));
    slot->state = st;
    slot->loaded = true;
    return absl::OkStatus();
}

absl::StatusOr<uint64_t> EmbeddedBackend::Store::FirstRetained(uint64_t shard_id, const ShardState& st) {
    if (st.last_sequence < st.first_sequence) {
        return st.first_sequence;
    }
    int64_t cutoff = Now().ToNanos() - st.retention_secs * 1'000'000'000;
    auto arrival = [&](uint64_t seq) -> absl::StatusOr<int64_t> {
        rocksdb::PinnableSlice v;
        rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), records_, ToSlice(RecordKey(shard_id, seq)), &v);
        if (!s.ok()) {
            return FromRocks(s, "read stream record");
        }
        return embedded::DecodeRecordArrival(ToView(v));
    };
    // Arrival times never decrease along a shard, so the expired records are a prefix.
    ZH_ASSIGN_OR_RETURN(auto first, arrival(st.first_sequence));
    if (first >= cutoff) {
        return st.first_sequence;
    }
    uint64_t lo = st.first_sequence + 1, hi = st.last_sequence + 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        ZH_ASSIGN_OR_RETURN(auto a, arrival(mid));
        if (a >= cutoff) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

absl::StatusOr<std::vector<RecordResult>> EmbeddedBackend::Store::PutRecords(const PutRecordsRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto loc, Locate(req.path));
    // Held shared: the stream cannot be deleted while its records go in.
    LockSet stream_lock(&locks_, {{loc.parent, req.path.name(), LockMode::kShared}});
    ZH_ASSIGN_OR_RETURN(auto stream, GetExisting(req.path, loc));
    if (stream.info.type != ObjectType::kStream) {
        return NotAStreamError(req.path, stream.info.type);
    }
    std::vector<RecordResult> results = PlaceRecords(req.records, stream.shard_count, &round_robin_);
    std::vector<uint32_t> used;  // shards this batch touches, ascending
    for (const RecordResult& out : results) {
        if (!out.status.ok()) {
            continue;
        }
        used.push_back(out.shard);
    }
    std::sort(used.begin(), used.end());
    used.erase(std::unique(used.begin(), used.end()), used.end());

    // Lock the shards in ascending order: sequence numbers stay dense and in commit order.
    std::vector<ShardSlot*> slots;
    slots.reserve(used.size());
    for (uint32_t k : used) {
        slots.push_back(Slot(stream.info.id + 1 + k));
    }
    for (ShardSlot* slot : slots) {
        slot->mu.Lock();
    }
    auto unlock = [&] {
        for (auto it = slots.rbegin(); it != slots.rend(); ++it) {
            (*it)->mu.Unlock();
        }
    };
    std::vector<ShardState> next(used.size());
    for (size_t j = 0; j < used.size(); ++j) {
        if (absl::Status s = LoadSlot(stream.info.id + 1 + used[j], slots[j]); !s.ok()) {
            unlock();
            return s;
        }
        next[j] = slots[j]->state;
    }
    int64_t now = Now().ToNanos();
    rocksdb::WriteBatch batch;
    for (size_t i = 0; i < req.records.size(); ++i) {
        RecordResult& out = results[i];
        if (!out.status.ok()) {
            continue;
        }
        size_t j = static_cast<size_t>(std::lower_bound(used.begin(), used.end(), out.shard) - used.begin());
        ShardState& st = next[j];
        st.last_arrival_ns = std::max(now, st.last_arrival_ns);
        out.sequence = ++st.last_sequence;
        const RecordInput& r = req.records[i];
        batch.Put(records_, RecordKey(stream.info.id + 1 + out.shard, out.sequence),
                  embedded::EncodeRecord(st.last_arrival_ns, r.partition_key, r.client_info, r.data));
    }
    for (size_t j = 0; j < used.size(); ++j) {
        batch.Put(meta_, ShardStateKey(stream.info.id + 1 + used[j]), embedded::EncodeShardState(next[j]));
    }
    absl::Status committed = Commit(&batch);
    if (committed.ok()) {
        for (size_t j = 0; j < used.size(); ++j) {
            slots[j]->state = next[j];
        }
    }
    unlock();
    ZH_RETURN_IF_ERROR(committed);
    return results;
}

absl::StatusOr<EmbeddedBackend::Store::OpenedShard> EmbeddedBackend::Store::OpenShard(const Path& path,
                                                                                      uint32_t shard) {
    ZH_ASSIGN_OR_RETURN(auto stream, GetStream(path));
    ZH_ASSIGN_OR_RETURN(auto sid, ShardIdOf(stream, shard));
    OpenedShard out;
    out.id = sid;
    ShardSlot* slot = Slot(sid);
    {
        absl::MutexLock lock(&slot->mu);
        ZH_RETURN_IF_ERROR(LoadSlot(sid, slot));
        out.state = slot->state;
    }
    ZH_ASSIGN_OR_RETURN(auto first, FirstRetained(sid, out.state));
    out.first_retained = first;
    return out;
}

absl::StatusOr<StreamLocation> EmbeddedBackend::Store::Seek(const SeekRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto shard, OpenShard(req.path, req.shard));
    const uint64_t sid = shard.id;
    const ShardState& st = shard.state;
    // The first record that arrived at or after the time: binary search, since arrival
    // times never decrease along a shard.
    auto by_time = [&]() -> absl::StatusOr<uint64_t> {
        int64_t t = req.time.ToNanos();
        uint64_t lo = shard.first_retained, hi = st.last_sequence + 1;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            rocksdb::PinnableSlice v;
            rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), records_, ToSlice(RecordKey(sid, mid)), &v);
            if (!s.ok()) {
                return FromRocks(s, "read stream record");
            }
            ZH_ASSIGN_OR_RETURN(auto a, embedded::DecodeRecordArrival(ToView(v)));
            if (a >= t) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        return lo;
    };
    return SeekIn(req, shard.first_retained, st.last_sequence, by_time);
}

absl::StatusOr<GetRecordsResult> EmbeddedBackend::Store::GetRecords(const GetRecordsRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto shard, OpenShard(req.path, req.location.shard));
    const uint64_t sid = shard.id;
    const ShardState& st = shard.state;
    const uint64_t first = shard.first_retained;
    GetRecordsResult out;
    uint64_t seq = std::max(req.location.sequence, first);
    uint32_t limit = PageLimit(req.limit);
    uint64_t bytes = 0;
    if (seq <= st.last_sequence) {
        std::string upper = RecordKey(sid, st.last_sequence + 1);
        rocksdb::Slice upper_slice(upper);
        rocksdb::ReadOptions ro;
        ro.iterate_upper_bound = &upper_slice;
        std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, records_));
        for (it->Seek(RecordKey(sid, seq)); it->Valid(); it->Next()) {
            if (out.records.size() == limit) {
                break;
            }
            int64_t arrival;
            std::string_view pk, ci, data;
            ZH_RETURN_IF_ERROR(embedded::DecodeRecord(ToView(it->value()), &arrival, &pk, &ci, &data));
            if (!out.records.empty() && bytes + data.size() > req.max_bytes) {
                break;
            }
            StreamRecord r;
            r.shard = req.location.shard;
            r.sequence = seq;
            r.arrival = Timestamp::FromNanos(arrival);
            r.data.assign(data.data(), data.size());
            r.partition_key.assign(pk.data(), pk.size());
            r.client_info.assign(ci.data(), ci.size());
            bytes += data.size();
            out.records.push_back(std::move(r));
            ++seq;
        }
        if (!it->status().ok()) {
            return FromRocks(it->status(), "get_records");
        }
    }
    out.next = StreamLocation{req.location.shard, seq};
    out.behind = st.last_sequence >= seq ? st.last_sequence - seq + 1 : 0;
    return out;
}

absl::Status EmbeddedBackend::Store::ReclaimShard(uint64_t shard_id) {
    ShardSlot* slot = Slot(shard_id);
    uint64_t from = 0, to = 0;
    {
        absl::MutexLock lock(&slot->mu);
        ZH_RETURN_IF_ERROR(LoadSlot(shard_id, slot));
        ZH_ASSIGN_OR_RETURN(auto first, FirstRetained(shard_id, slot->state));
        if (first <= slot->state.first_sequence) {
            return absl::OkStatus();
        }
        ShardState next = slot->state;
        from = next.first_sequence;
        to = next.first_sequence = first;
        rocksdb::WriteBatch batch;
        batch.DeleteRange(records_, RecordKey(shard_id, from), RecordKey(shard_id, to));
        batch.Put(meta_, ShardStateKey(shard_id), embedded::EncodeShardState(next));
        ZH_RETURN_IF_ERROR(Commit(&batch));
        slot->state = next;
    }
    std::string b = RecordKey(shard_id, from), e = RecordKey(shard_id, to);
    rocksdb::Slice bs(b), es(e);
    return FromRocks(db_->CompactRange(rocksdb::CompactRangeOptions(), records_, &bs, &es), "reclaim records");
}

absl::Status EmbeddedBackend::Store::Maintain() {
    std::vector<uint64_t> shard_ids;
    {
        std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
        for (it->Seek("Q"); it->Valid() && it->key().starts_with("Q"); it->Next()) {
            ByteReader r(ToView(it->key()).substr(1));
            uint64_t id;
            if (r.GetBigEndian64(&id)) {
                shard_ids.push_back(id);
            }
        }
        if (!it->status().ok()) {
            return FromRocks(it->status(), "list shards");
        }
    }
    absl::Status first_error;
    for (uint64_t id : shard_ids) {
        absl::Status s = ReclaimShard(id);
        if (!s.ok() && !absl::IsNotFound(s) && first_error.ok()) {
            first_error = s;  // carry on with the other shards
        }
    }
    return first_error;
}

}  // namespace zerohop
