// The asynchronous face of the embedded store: quick calls run the synchronous engine on
// the caller's thread; slow ones run it on the backend's I/O threads.

#include "embedded/embedded_backend.h"

#include "base/status_macros.h"
#include "embedded/internal/store.h"

namespace zerohop {

absl::StatusOr<std::unique_ptr<EmbeddedBackend>> EmbeddedBackend::Open(EmbeddedOptions options) {
    EmbeddedOptions kept = options;
    ZH_ASSIGN_OR_RETURN(auto store, Store::Open(std::move(options)));
    return std::unique_ptr<EmbeddedBackend>(new EmbeddedBackend(std::move(store), kept));
}

EmbeddedBackend::EmbeddedBackend(std::unique_ptr<Store> store, const EmbeddedOptions& options)
    : store_(std::move(store)),
      sync_writes_(options.sync_writes),
      inline_max_bytes_(options.inline_max_bytes),
      inline_read_max_bytes_(options.inline_read_max_bytes) {
    if (options.io_threads > 0) {
        io_ = std::make_unique<TaskPool>("zh-embedded-io", options.io_threads);
        store_->SetFileReaper([io = io_.get()](absl::AnyInvocable<void() &&> unlink) { io->Run(std::move(unlink)); });
    }
}

EmbeddedBackend::~EmbeddedBackend() { io_.reset(); }

void EmbeddedBackend::Maybe(bool slow, absl::AnyInvocable<void() &&> fn) {
    if (slow && io_ != nullptr) {
        io_->Run(std::move(fn));
    } else {
        std::move(fn)();
    }
}

absl::Status EmbeddedBackend::Maintain() { return store_->Maintain(); }
absl::Status EmbeddedBackend::Flush() { return store_->Flush(); }

// Reads that stay quick: point lookups, mostly served from caches.
void EmbeddedBackend::ListContainers(Done<std::vector<std::string>> done) { std::move(done)(store_->ListContainers()); }
void EmbeddedBackend::Stat(Path path, Done<ObjectInfo> done) { std::move(done)(store_->Stat(path)); }
void EmbeddedBackend::OpenObjectFile(Path path, Done<ObjectFile> done) {
    std::move(done)(store_->OpenObjectFile(path));
}
void EmbeddedBackend::Readlink(Path path, Done<std::string> done) { std::move(done)(store_->Readlink(path)); }
void EmbeddedBackend::GetItem(GetItemRequest req, Done<Item> done) { std::move(done)(store_->GetItem(req)); }
void EmbeddedBackend::DescribeStream(Path path, Done<StreamDescription> done) {
    std::move(done)(store_->DescribeStream(path));
}
void EmbeddedBackend::Seek(SeekRequest req, Done<StreamLocation> done) { std::move(done)(store_->Seek(req)); }

// Scans: as long as their page.
void EmbeddedBackend::List(ListRequest req, Done<ListResult> done) {
    Maybe(true, [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(store_->List(req)); });
}
void EmbeddedBackend::GetItems(GetItemsRequest req, Done<GetItemsResult> done) {
    Maybe(true,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(store_->GetItems(req)); });
}
void EmbeddedBackend::GetRecords(GetRecordsRequest req, Done<GetRecordsResult> done) {
    Maybe(true,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(store_->GetRecords(req)); });
}
void EmbeddedBackend::Sync(DoneStatus done) {
    Maybe(true, [this, done = std::move(done)]() mutable { std::move(done)(store_->Sync()); });
}

// Writes: quick unless they fsync or carry many bytes.
void EmbeddedBackend::Mkdir(MkdirRequest req, Done<ObjectInfo> done) {
    Maybe(sync_writes_,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(store_->Mkdir(req)); });
}
void EmbeddedBackend::Rmdir(Path path, DoneStatus done) {
    Maybe(sync_writes_, [this, path = std::move(path), done = std::move(done)]() mutable {
        std::move(done)(store_->Rmdir(path));
    });
}
void EmbeddedBackend::Rename(RenameRequest req, DoneStatus done) {
    Maybe(sync_writes_,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(store_->Rename(req)); });
}
void EmbeddedBackend::Symlink(SymlinkRequest req, Done<ObjectInfo> done) {
    Maybe(sync_writes_,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(store_->Symlink(req)); });
}
// A delete commits here; the unlink of a large object's file goes to the I/O threads.
void EmbeddedBackend::Delete(DeleteRequest req, DoneStatus done) {
    Maybe(sync_writes_,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(store_->Delete(req)); });
}
void EmbeddedBackend::SetMetadata(SetMetadataRequest req, Done<ObjectInfo> done) {
    Maybe(sync_writes_, [this, req = std::move(req), done = std::move(done)]() mutable {
        std::move(done)(store_->SetMetadata(req));
    });
}

void EmbeddedBackend::GetObject(GetObjectRequest req, DataSink* sink, Done<GetObjectResult> done) {
    if (sink == nullptr) {
        return std::move(done)(absl::InvalidArgumentError("get: no sink for the bytes"));
    }
    // The version and range are pinned here, the bytes may be copied elsewhere.
    auto read = store_->OpenObject(req);
    if (!read.ok()) {
        return std::move(done)(read.status());
    }
    if (absl::Status s = sink->Expect(read->end - read->begin); !s.ok()) {
        return std::move(done)(s);
    }
    bool slow = read->fd.valid() && read->end - read->begin > inline_read_max_bytes_;
    Maybe(slow, [this, read = std::move(*read), sink, done = std::move(done)]() mutable {
        std::move(done)(store_->ReadObject(read, sink));
    });
}
void EmbeddedBackend::PutObject(PutObjectRequest req, DataSource* data, Done<ObjectInfo> done) {
    // A source of unknown size streams: its caller already runs on a thread that may block.
    std::optional<uint64_t> size = data != nullptr ? data->size() : std::nullopt;
    bool slow = sync_writes_ || (size && *size > inline_max_bytes_);
    Maybe(slow, [this, req = std::move(req), data, done = std::move(done)]() mutable {
        std::move(done)(store_->PutObject(req, data));
    });
}
void EmbeddedBackend::WriteObject(WriteObjectRequest req, Done<ObjectInfo> done) {
    bool slow = sync_writes_ || req.data.size() > inline_max_bytes_;
    Maybe(slow, [this, req = std::move(req), done = std::move(done)]() mutable {
        std::move(done)(store_->WriteObject(req));
    });
}
void EmbeddedBackend::Append(AppendRequest req, Done<ObjectInfo> done) {
    bool slow = sync_writes_ || req.data.size() > inline_max_bytes_;
    Maybe(slow, [this, req = std::move(req), done = std::move(done)]() mutable {
        std::move(done)(store_->Append(req));
    });
}
void EmbeddedBackend::Truncate(TruncateRequest req, Done<ObjectInfo> done) {
    Maybe(true,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(store_->Truncate(req)); });
}

void EmbeddedBackend::PutItem(PutItemRequest req, Done<ObjectInfo> done) {
    Maybe(sync_writes_,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(store_->PutItem(req)); });
}
void EmbeddedBackend::PutItems(std::vector<PutItemRequest> reqs, Done<std::vector<absl::Status>> done) {
    Maybe(sync_writes_ || reqs.size() > 16, [this, reqs = std::move(reqs), done = std::move(done)]() mutable {
        std::move(done)(store_->PutItems(reqs));
    });
}
void EmbeddedBackend::UpdateItem(UpdateItemRequest req, Done<ObjectInfo> done) {
    Maybe(sync_writes_,
          [this, req = std::move(req), done = std::move(done)]() mutable { std::move(done)(store_->UpdateItem(req)); });
}

void EmbeddedBackend::CreateStream(CreateStreamRequest req, Done<ObjectInfo> done) {
    Maybe(sync_writes_, [this, req = std::move(req), done = std::move(done)]() mutable {
        std::move(done)(store_->CreateStream(req));
    });
}
void EmbeddedBackend::DeleteStream(Path path, DoneStatus done) {
    // Drops every record: a range delete, and compaction later.
    Maybe(true, [this, path = std::move(path), done = std::move(done)]() mutable {
        std::move(done)(store_->DeleteStream(path));
    });
}
void EmbeddedBackend::PutRecords(PutRecordsRequest req, Done<std::vector<RecordResult>> done) {
    Maybe(sync_writes_, [this, req = std::move(req), done = std::move(done)]() mutable {
        std::move(done)(store_->PutRecords(req));
    });
}

}  // namespace zerohop
