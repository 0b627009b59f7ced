// The asynchronous face of the embedded store: each call runs the synchronous engine on
// the caller's thread and completes before returning.

#include "embedded/embedded_backend.h"

#include "embedded/internal/store.h"

namespace zerohop {

absl::StatusOr<std::unique_ptr<EmbeddedBackend>> EmbeddedBackend::Open(EmbeddedOptions options) {
    auto store = Store::Open(std::move(options));
    if (!store.ok()) {
        return store.status();
    }
    return std::unique_ptr<EmbeddedBackend>(new EmbeddedBackend(std::move(*store)));
}

EmbeddedBackend::EmbeddedBackend(std::unique_ptr<Store> store) : store_(std::move(store)) {}
EmbeddedBackend::~EmbeddedBackend() = default;

absl::Status EmbeddedBackend::Maintain() { return store_->Maintain(); }
absl::Status EmbeddedBackend::Flush() { return store_->Flush(); }

void EmbeddedBackend::ListContainers(Done<std::vector<std::string>> done) { std::move(done)(store_->ListContainers()); }
void EmbeddedBackend::Stat(Path path, Done<ObjectInfo> done) { std::move(done)(store_->Stat(path)); }
void EmbeddedBackend::List(ListRequest req, Done<ListResult> done) { std::move(done)(store_->List(req)); }
void EmbeddedBackend::Mkdir(MkdirRequest req, Done<ObjectInfo> done) { std::move(done)(store_->Mkdir(req)); }
void EmbeddedBackend::Rmdir(Path path, DoneStatus done) { std::move(done)(store_->Rmdir(path)); }
void EmbeddedBackend::Rename(RenameRequest req, DoneStatus done) { std::move(done)(store_->Rename(req)); }
void EmbeddedBackend::Symlink(SymlinkRequest req, Done<ObjectInfo> done) { std::move(done)(store_->Symlink(req)); }
void EmbeddedBackend::Readlink(Path path, Done<std::string> done) { std::move(done)(store_->Readlink(path)); }
void EmbeddedBackend::Delete(DeleteRequest req, DoneStatus done) { std::move(done)(store_->Delete(req)); }
void EmbeddedBackend::SetMetadata(SetMetadataRequest req, Done<ObjectInfo> done) {
    std::move(done)(store_->SetMetadata(req));
}

void EmbeddedBackend::GetObject(GetObjectRequest req, DataSink* sink, Done<GetObjectResult> done) {
    std::move(done)(store_->GetObject(req, sink));
}
void EmbeddedBackend::PutObject(PutObjectRequest req, DataSource* data, Done<ObjectInfo> done) {
    std::move(done)(store_->PutObject(req, data));
}
void EmbeddedBackend::WriteObject(WriteObjectRequest req, Done<ObjectInfo> done) {
    std::move(done)(store_->WriteAt(req.path, req.offset, req.data));
}
void EmbeddedBackend::Append(AppendRequest req, Done<ObjectInfo> done) {
    std::move(done)(store_->WriteAt(req.path, std::nullopt, req.data));
}
void EmbeddedBackend::Truncate(TruncateRequest req, Done<ObjectInfo> done) { std::move(done)(store_->Truncate(req)); }

void EmbeddedBackend::GetItem(GetItemRequest req, Done<Item> done) { std::move(done)(store_->GetItem(req)); }
void EmbeddedBackend::GetItems(GetItemsRequest req, Done<GetItemsResult> done) {
    std::move(done)(store_->GetItems(req));
}
void EmbeddedBackend::PutItem(PutItemRequest req, Done<ObjectInfo> done) { std::move(done)(store_->PutItem(req)); }
void EmbeddedBackend::PutItems(std::vector<PutItemRequest> reqs, Done<std::vector<absl::Status>> done) {
    std::vector<absl::Status> results;
    results.reserve(reqs.size());
    for (const PutItemRequest& r : reqs) {
        results.push_back(store_->PutItem(r).status());
    }
    std::move(done)(std::move(results));
}
void EmbeddedBackend::UpdateItem(UpdateItemRequest req, Done<ObjectInfo> done) {
    std::move(done)(store_->UpdateItem(req));
}

void EmbeddedBackend::CreateStream(CreateStreamRequest req, Done<ObjectInfo> done) {
    std::move(done)(store_->CreateStream(req));
}
void EmbeddedBackend::DescribeStream(Path path, Done<StreamDescription> done) {
    std::move(done)(store_->DescribeStream(path));
}
void EmbeddedBackend::DeleteStream(Path path, DoneStatus done) { std::move(done)(store_->DeleteStream(path)); }
void EmbeddedBackend::PutRecords(PutRecordsRequest req, Done<std::vector<RecordResult>> done) {
    std::move(done)(store_->PutRecords(req));
}
void EmbeddedBackend::Seek(SeekRequest req, Done<StreamLocation> done) { std::move(done)(store_->Seek(req)); }
void EmbeddedBackend::GetRecords(GetRecordsRequest req, Done<GetRecordsResult> done) {
    std::move(done)(store_->GetRecords(req));
}

void EmbeddedBackend::Sync(DoneStatus done) { std::move(done)(store_->Sync()); }

}  // namespace zerohop
