#include "conformance/sync_backend.h"

#include <gtest/gtest.h>

namespace zerohop::testing {

Path P(std::string_view text) {
    auto p = Path::Parse(text);
    if (!p.ok()) {
        ADD_FAILURE() << "bad test path " << text << ": " << p.status();
        return Path();
    }
    return *p;
}

absl::StatusOr<std::vector<std::string>> SyncBackend::ListContainers() {
    return Await<std::vector<std::string>>([&](auto done) { b_->ListContainers(std::move(done)); });
}
absl::StatusOr<ObjectInfo> SyncBackend::Stat(std::string_view path) {
    return Await<ObjectInfo>([&](auto done) { b_->Stat(P(path), std::move(done)); });
}
absl::StatusOr<ListResult> SyncBackend::List(ListRequest req) {
    return Await<ListResult>([&](auto done) { b_->List(std::move(req), std::move(done)); });
}
absl::StatusOr<ObjectInfo> SyncBackend::Mkdir(std::string_view path, uint32_t mode) {
    return Await<ObjectInfo>([&](auto done) { b_->Mkdir({.path = P(path), .mode = mode}, std::move(done)); });
}
absl::Status SyncBackend::Rmdir(std::string_view path) {
    return AwaitStatus([&](auto done) { b_->Rmdir(P(path), std::move(done)); });
}
absl::Status SyncBackend::Rename(std::string_view from, std::string_view to, bool no_replace) {
    return AwaitStatus([&](auto done) {
        b_->Rename({.from = P(from), .to = P(to), .no_replace = no_replace}, std::move(done));
    });
}
absl::StatusOr<ObjectInfo> SyncBackend::Symlink(std::string_view path, std::string target) {
    return Await<ObjectInfo>(
        [&](auto done) { b_->Symlink({.path = P(path), .target = std::move(target)}, std::move(done)); });
}
absl::StatusOr<ObjectInfo> SyncBackend::Mknod(MknodRequest req) {
    return Await<ObjectInfo>([&](auto done) { b_->Mknod(std::move(req), std::move(done)); });
}
absl::StatusOr<std::string> SyncBackend::Readlink(std::string_view path) {
    return Await<std::string>([&](auto done) { b_->Readlink(P(path), std::move(done)); });
}
absl::Status SyncBackend::Delete(std::string_view path, std::string condition) {
    return AwaitStatus(
        [&](auto done) { b_->Delete({.path = P(path), .condition = std::move(condition)}, std::move(done)); });
}
absl::StatusOr<ObjectInfo> SyncBackend::SetMetadata(SetMetadataRequest req) {
    return Await<ObjectInfo>([&](auto done) { b_->SetMetadata(std::move(req), std::move(done)); });
}

absl::StatusOr<std::string> SyncBackend::Get(std::string_view path, uint64_t offset, uint64_t length) {
    std::string out;
    StringSink sink(&out);
    auto r = Await<GetObjectResult>([&](auto done) {
        b_->GetObject({.path = P(path), .offset = offset, .length = length}, &sink, std::move(done));
    });
    if (!r.ok()) {
        return r.status();
    }
    if (r->bytes != out.size()) {
        return absl::InternalError("get: byte count differs from what reached the sink");
    }
    return out;
}
absl::StatusOr<ObjectInfo> SyncBackend::Put(std::string_view path, std::string_view data, AttributeMap attrs,
                                            std::string condition) {
    StringSource source(data);
    return Await<ObjectInfo>([&](auto done) {
        b_->PutObject({.path = P(path), .attributes = std::move(attrs), .condition = std::move(condition)}, &source,
                      std::move(done));
    });
}
absl::StatusOr<ObjectInfo> SyncBackend::Write(std::string_view path, uint64_t offset, std::string_view data) {
    return Await<ObjectInfo>(
        [&](auto done) { b_->WriteObject({.path = P(path), .offset = offset, .data = data}, std::move(done)); });
}
absl::StatusOr<ObjectInfo> SyncBackend::Append(std::string_view path, std::string_view data) {
    return Await<ObjectInfo>([&](auto done) { b_->Append({.path = P(path), .data = data}, std::move(done)); });
}
absl::StatusOr<ObjectInfo> SyncBackend::Truncate(std::string_view path, uint64_t size) {
    return Await<ObjectInfo>([&](auto done) { b_->Truncate({.path = P(path), .size = size}, std::move(done)); });
}

absl::StatusOr<Item> SyncBackend::GetItem(std::string_view path, std::vector<std::string> attrs) {
    return Await<Item>(
        [&](auto done) { b_->GetItem({.path = P(path), .attributes = std::move(attrs)}, std::move(done)); });
}
absl::StatusOr<GetItemsResult> SyncBackend::GetItems(GetItemsRequest req) {
    return Await<GetItemsResult>([&](auto done) { b_->GetItems(std::move(req), std::move(done)); });
}
absl::StatusOr<ObjectInfo> SyncBackend::PutItem(std::string_view path, AttributeMap attrs, std::string condition) {
    return Await<ObjectInfo>([&](auto done) {
        b_->PutItem({.path = P(path), .attributes = std::move(attrs), .condition = std::move(condition)},
                    std::move(done));
    });
}
absl::StatusOr<std::vector<absl::Status>> SyncBackend::PutItems(std::vector<PutItemRequest> reqs) {
    return Await<std::vector<absl::Status>>([&](auto done) { b_->PutItems(std::move(reqs), std::move(done)); });
}
absl::StatusOr<ObjectInfo> SyncBackend::UpdateItem(std::string_view path, std::string update, std::string condition,
                                                   std::string else_update) {
    return Await<ObjectInfo>([&](auto done) {
        b_->UpdateItem({.path = P(path),
                        .update = std::move(update),
                        .condition = std::move(condition),
                        .else_update = std::move(else_update)},
                       std::move(done));
    });
}

absl::StatusOr<ObjectInfo> SyncBackend::CreateStream(std::string_view path, uint32_t shards, int64_t retention_secs) {
    return Await<ObjectInfo>([&](auto done) {
        b_->CreateStream({.path = P(path), .shard_count = shards, .retention_secs = retention_secs}, std::move(done));
    });
}
absl::StatusOr<StreamDescription> SyncBackend::DescribeStream(std::string_view path) {
    return Await<StreamDescription>([&](auto done) { b_->DescribeStream(P(path), std::move(done)); });
}
absl::Status SyncBackend::DeleteStream(std::string_view path) {
    return AwaitStatus([&](auto done) { b_->DeleteStream(P(path), std::move(done)); });
}
absl::StatusOr<std::vector<RecordResult>> SyncBackend::PutRecords(std::string_view path,
                                                                  std::vector<RecordInput> records) {
    return Await<std::vector<RecordResult>>([&](auto done) {
        b_->PutRecords({.path = P(path), .records = std::move(records)}, std::move(done));
    });
}
absl::StatusOr<StreamLocation> SyncBackend::Seek(SeekRequest req) {
    return Await<StreamLocation>([&](auto done) { b_->Seek(std::move(req), std::move(done)); });
}
absl::StatusOr<GetRecordsResult> SyncBackend::GetRecords(std::string_view path, StreamLocation loc, uint32_t limit,
                                                         uint64_t max_bytes) {
    return Await<GetRecordsResult>([&](auto done) {
        b_->GetRecords({.path = P(path), .location = loc, .limit = limit, .max_bytes = max_bytes}, std::move(done));
    });
}
absl::Status SyncBackend::Sync() {
    return AwaitStatus([&](auto done) { b_->Sync(std::move(done)); });
}

}  // namespace zerohop::testing
