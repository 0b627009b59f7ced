// Stream shards as files: a read yields the shard's records framed one after the other
// (AppendFrame), fetched in windows as the reader goes; one read at a time per handle.

#include <errno.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "internal/fs.h"

namespace zerohop::fuse {

// <sequence> <arrival secs>.<9-digit nanos> <data length>\n<data>\n
void AppendFrame(const StreamRecord& r, std::string* out) {
    absl::StrAppendFormat(out, "%d %d.%09d %d\n", r.sequence, r.arrival.secs, r.arrival.nsecs, r.data.size());
    out->append(r.data);
    out->push_back('\n');
}

bool FuseFs::Impl::InitShard(Ino ino, FileHandle* h) {
    auto path = PathOf(ino);
    if (!path) {
        return false;
    }
    auto name = path->name();
    if (!absl::SimpleAtoi(absl::string_view(name.data(), name.size()), &h->shard_no)) {
        return false;
    }
    h->shard = true;
    h->stream = path->Parent();
    return true;
}

void FuseFs::Impl::ReadShard(fuse_req_t req, ShardHandle h, size_t size, off_t off) {
    {
        std::lock_guard<std::mutex> lock(h->mu);
        if (h->busy) {
            h->waiting.emplace_back(req, size, off);
            return;
        }
        h->busy = true;
    }
    ReadShardNow(req, h, size, off);
}

void FuseFs::Impl::ShardReadDone(const ShardHandle& h) {
    std::tuple<fuse_req_t, size_t, off_t> next;
    {
        std::lock_guard<std::mutex> lock(h->mu);
        if (h->waiting.empty()) {
            h->busy = false;
            return;
        }
        next = h->waiting.front();
        h->waiting.pop_front();
    }
    ReadShardNow(std::get<0>(next), h, std::get<1>(next), std::get<2>(next));
}

void FuseFs::Impl::ReadShardNow(fuse_req_t req, ShardHandle h, size_t size, off_t off) {
    auto fail = [this, req, h](int e) {
        fuse_reply_err(req, e);
        ShardReadDone(h);
    };
    uint64_t at = static_cast<uint64_t>(off);
    if (at < h->offset) {
        if (at != 0) {
            return fail(EINVAL);  // shard files are read forward
        }
        h->next_sequence = 0;  // from the start again
        h->offset = 0;
        h->pending.clear();
    }
    if (h->next_sequence == 0) {
        // First read: from the oldest record still retained.
        return client_->SeekAsync({.path = h->stream, .shard = h->shard_no, .type = SeekType::kEarliest},
                                  [this, req, h, size, off, fail](absl::StatusOr<StreamLocation> r) {
                                      if (!r.ok()) {
                                          return fail(Errno(r.status()));
                                      }
                                      h->next_sequence = r->sequence;
                                      ReadShardNow(req, h, size, off);
                                  });
    }
    uint64_t end = h->offset + h->pending.size();
    if (end >= at + size || h->at_end) {
        // Covered (or all there is): hand it over and forget what lies before it.
        h->at_end = false;  // a later read looks for new records again
        size_t from = static_cast<size_t>(std::min(at, end) - h->offset);
        size_t n = std::min<size_t>(size, h->pending.size() - from);
        fuse_reply_buf(req, h->pending.data() + from, n);
        // Keep some bytes behind the read, for requests of the same read that come late.
        if (from > kShardWindowBehind) {
            size_t drop = from - kShardWindowBehind;
            h->pending.erase(0, drop);
            h->offset += drop;
        }
        return ShardReadDone(h);
    }
    client_->GetRecordsAsync({.path = h->stream,
                              .location = {.shard = h->shard_no, .sequence = h->next_sequence},
                              .limit = 1000,
                              .max_bytes = std::max<uint64_t>(at + size - end, 64 << 10)},
                             [this, req, h, size, off, fail](absl::StatusOr<GetRecordsResult> r) {
                                 if (!r.ok()) {
                                     return fail(Errno(r.status()));
                                 }
                                 for (const StreamRecord& rec : r->records) {
                                     AppendFrame(rec, &h->pending);
                                 }
                                 h->next_sequence = r->next.sequence;
                                 h->at_end = r->records.empty();
                                 ReadShardNow(req, h, size, off);
                             });
}

}  // namespace zerohop::fuse
