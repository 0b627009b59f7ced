// The asynchronous face of the embedded store: quick calls run the synchronous engine on
// the caller's thread; slow ones run it on the backend's I/O threads.

#include "embedded/embedded_backend.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "embedded/internal/store.h"

namespace zerohop {

absl::StatusOr<std::unique_ptr<EmbeddedBackend>> EmbeddedBackend::Open(EmbeddedOptions options) {
    ZH_ASSIGN_OR_RETURN(auto store, Store::Open(options));
    return std::unique_ptr<EmbeddedBackend>(new EmbeddedBackend(std::move(store), std::move(options)));
}

EmbeddedBackend::EmbeddedBackend(std::unique_ptr<Store> store, EmbeddedOptions options)
    : options_(std::move(options)), store_(std::move(store)) {
    if (options_.io_threads > 0) {
        io_ = std::make_unique<TaskPool>("zh-embedded-io", options_.io_threads);
    }
    SetReaper(*store_);
}

EmbeddedBackend::~EmbeddedBackend() {
    io_.reset();
    absl::MutexLock lock(&store_mu_);
    store_.reset();
}

void EmbeddedBackend::SetReaper(Store& store) {
    if (io_ != nullptr) {
        store.SetFileReaper([io = io_.get()](absl::AnyInvocable<void() &&> unlink) { io->Run(std::move(unlink)); });
    }
}

void EmbeddedBackend::Maybe(bool slow, absl::AnyInvocable<void() &&> fn) {
    if (slow && io_ != nullptr) {
        io_->Run(std::move(fn));
    } else {
        std::move(fn)();
    }
}

template <typename Fn>
auto EmbeddedBackend::WithStore(Fn&& fn) -> decltype(fn(std::declval<Store&>())) {
    if (needs_reopen_.load(std::memory_order_relaxed)) {
        Reopen();
    }
    absl::ReaderMutexLock lock(&store_mu_);
    if (store_ == nullptr) {
        return absl::UnavailableError(absl::StrFormat(
            "embedded store %s: not open after an I/O error (%s); it reopens by itself once the disk takes writes "
            "again; retry",
            options_.dir, reopen_error_.message()));
    }
    auto result = fn(*store_);
    if (store_->stopped()) {
        needs_reopen_ = true;
    }
    return result;
}

void EmbeddedBackend::Reopen() {
    absl::MutexLock once(&reopen_mu_);
    absl::Time now = absl::Now();
    if (now < next_reopen_) {
        return;
    }
    absl::MutexLock lock(&store_mu_);  // waits for the calls in flight
    if (store_ != nullptr && !store_->stopped()) {
        needs_reopen_ = false;
        return;
    }
    // Closed first: one RocksDB at a time holds the directory. Opening replays the log, with
    // every acknowledged write and without a torn tail.
    store_.reset();
    auto opened = Store::Open(options_);
    if (opened.ok()) {
        store_ = std::move(*opened);
        SetReaper(*store_);
        needs_reopen_ = false;
        reopen_backoff_ = kFirstReopenBackoff;
        next_reopen_ = now;
        Log(LogLevel::kWarning, "embedded store reopened after an I/O error: it takes writes again", "dir",
            options_.dir);
        return;
    }
    // The disk still refuses: serve reads, and try again later, less and less often.
    reopen_error_ = opened.status();
    next_reopen_ = now + reopen_backoff_;
    reopen_backoff_ = std::min(reopen_backoff_ * 2, kMaxReopenBackoff);
    auto read_only = Store::Open(options_, /*read_only=*/true);
    if (read_only.ok()) {
        store_ = std::move(*read_only);
    }
    Log(LogLevel::kWarning, "embedded store cannot reopen for writes yet", "dir", options_.dir, "error",
        std::string(opened.status().message()), "reads", read_only.ok() ? "served" : "unavailable");
}

absl::Status EmbeddedBackend::Maintain() { return WithStore([&](Store& s) { return s.Maintain(); }); }
absl::Status EmbeddedBackend::Flush() { return WithStore([&](Store& s) { return s.Flush(); }); }

// Reads that stay quick: point lookups, mostly served from caches.
void EmbeddedBackend::ListContainers(Done<std::vector<std::string>> done) { std::move(done)(WithStore([&](Store& s) { return s.ListContainers(); })); }
void EmbeddedBackend::Stat(Path path, Done<ObjectInfo> done) { std::move(done)(WithStore([&](Store& s) { return s.Stat(path); })); }
void EmbeddedBackend::OpenObjectFile(Path path, Done<ObjectFile> done) {
    std::move(done)(WithStore([&](Store& s) { return s.OpenObjectFile(path); }));
}
void EmbeddedBackend::Readlink(Path path, Done<std::string> done) { std::move(done)(WithStore([&](Store& s) { return s.Readlink(path); })); }
void EmbeddedBackend::GetItem(GetItemRequest req, Done<Item> done) { std::move(done)(WithStore([&](Store& s) { return s.GetItem(req); })); }
void EmbeddedBackend::DescribeStream(Path path, Done<StreamDescription> done) {
    std::move(done)(WithStore([&](Store& s) { return s.DescribeStream(path); }));
}
void EmbeddedBackend::Seek(SeekRequest req, Done<StreamLocation> done) { std::move(done)(WithStore([&](Store& s) { return s.Seek(req); })); }

// Scans: as long as their page.
void EmbeddedBackend::List(ListRequest req, Done<ListResult> done) {
    Maybe(true, [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.List(req); })); });
}
void EmbeddedBackend::GetItems(GetItemsRequest req, Done<GetItemsResult> done) {
    Maybe(true,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.GetItems(req); })); });
}
void EmbeddedBackend::GetRecords(GetRecordsRequest req, Done<GetRecordsResult> done) {
    Maybe(true,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.GetRecords(req); })); });
}
void EmbeddedBackend::Sync(DoneStatus done) {
    Maybe(true, [this, done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.Sync(); })); });
}

// Writes: quick unless they fsync or carry many bytes.
void EmbeddedBackend::Mkdir(MkdirRequest req, Done<ObjectInfo> done) {
    Maybe(options_.sync_writes,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.Mkdir(req); })); });
}
void EmbeddedBackend::Rmdir(Path path, DoneStatus done) {
    Maybe(options_.sync_writes, [this, path = std::move(path), done = std::move(done)]() mutable {
        std::move(done)(WithStore([&](Store& s) { return s.Rmdir(path); }));
    });
}
void EmbeddedBackend::Rename(RenameRequest req, DoneStatus done) {
    Maybe(options_.sync_writes,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.Rename(req); })); });
}
void EmbeddedBackend::Symlink(SymlinkRequest req, Done<ObjectInfo> done) {
    Maybe(options_.sync_writes,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.Symlink(req); })); });
}
void EmbeddedBackend::Mknod(MknodRequest req, Done<ObjectInfo> done) {
    Maybe(options_.sync_writes,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.Mknod(req); })); });
}
// A delete commits here; the unlink of a large object's file goes to the I/O threads.
void EmbeddedBackend::Delete(DeleteRequest req, DoneStatus done) {
    Maybe(options_.sync_writes,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.Delete(req); })); });
}
void EmbeddedBackend::SetMetadata(SetMetadataRequest req, Done<ObjectInfo> done) {
    Maybe(options_.sync_writes, [this, req = std::move(req), done = std::move(done)]() mutable {
        std::move(done)(WithStore([&](Store& s) { return s.SetMetadata(req); }));
    });
}

void EmbeddedBackend::GetObject(GetObjectRequest req, DataSink* sink, Done<GetObjectResult> done) {
    if (sink == nullptr) {
        return std::move(done)(absl::InvalidArgumentError("get: no sink for the bytes"));
    }
    // The version and range are pinned here, the bytes may be copied elsewhere.
    auto read = WithStore([&](Store& s) { return s.OpenObject(req); });
    if (!read.ok()) {
        return std::move(done)(read.status());
    }
    if (absl::Status s = sink->Expect(read->end - read->begin); !s.ok()) {
        return std::move(done)(s);
    }
    bool slow = read->fd.valid() && read->end - read->begin > options_.inline_read_max_bytes;
    Maybe(slow, [this, read = std::move(*read), sink, done = std::move(done)]() mutable {
        std::move(done)(WithStore([&](Store& s) { return s.ReadObject(read, sink); }));
    });
}
void EmbeddedBackend::PutObject(PutObjectRequest req, DataSource* data, Done<ObjectInfo> done) {
    // A source of unknown size streams: its caller already runs on a thread that may block.
    std::optional<uint64_t> size = data != nullptr ? data->size() : std::nullopt;
    bool slow = options_.sync_writes || (size && *size > options_.inline_max_bytes);
    Maybe(slow, [this, req = std::move(req), data, done = std::move(done)]() mutable {
        std::move(done)(WithStore([&](Store& s) { return s.PutObject(req, data); }));
    });
}
void EmbeddedBackend::WriteObject(WriteObjectRequest req, Done<ObjectInfo> done) {
    bool slow = options_.sync_writes || req.data.size() > options_.inline_max_bytes;
    Maybe(slow, [this, req = std::move(req), done = std::move(done)]() mutable {
        std::move(done)(WithStore([&](Store& s) { return s.WriteObject(req); }));
    });
}
void EmbeddedBackend::Append(AppendRequest req, Done<ObjectInfo> done) {
    bool slow = options_.sync_writes || req.data.size() > options_.inline_max_bytes;
    Maybe(slow, [this, req = std::move(req), done = std::move(done)]() mutable {
        std::move(done)(WithStore([&](Store& s) { return s.Append(req); }));
    });
}
void EmbeddedBackend::Truncate(TruncateRequest req, Done<ObjectInfo> done) {
    Maybe(true,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.Truncate(req); })); });
}

void EmbeddedBackend::PutItem(PutItemRequest req, Done<ObjectInfo> done) {
    Maybe(options_.sync_writes,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.PutItem(req); })); });
}
void EmbeddedBackend::PutItems(std::vector<PutItemRequest> reqs, Done<std::vector<absl::Status>> done) {
    Maybe(options_.sync_writes || reqs.size() > 16, [this, reqs = std::move(reqs), done = std::move(done)]() mutable {
        std::move(done)(WithStore([&](Store& s) { return s.PutItems(reqs); }));
    });
}
void EmbeddedBackend::UpdateItem(UpdateItemRequest req, Done<ObjectInfo> done) {
    Maybe(options_.sync_writes,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(WithStore([&](Store& s) { return s.UpdateItem(req); })); });
}

void EmbeddedBackend::CreateStream(CreateStreamRequest req, Done<ObjectInfo> done) {
    Maybe(options_.sync_writes, [this, req = std::move(req), done = std::move(done)]() mutable {
        std::move(done)(WithStore([&](Store& s) { return s.CreateStream(req); }));
    });
}
void EmbeddedBackend::DeleteStream(Path path, DoneStatus done) {
    // Drops every record: a range delete, and compaction later.
    Maybe(true, [this, path = std::move(path), done = std::move(done)]() mutable {
        std::move(done)(WithStore([&](Store& s) { return s.DeleteStream(path); }));
    });
}
void EmbeddedBackend::PutRecords(PutRecordsRequest req, Done<std::vector<RecordResult>> done) {
    Maybe(options_.sync_writes, [this, req = std::move(req), done = std::move(done)]() mutable {
        std::move(done)(WithStore([&](Store& s) { return s.PutRecords(req); }));
    });
}

}  // namespace zerohop
