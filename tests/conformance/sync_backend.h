#pragma once
// Blocking calls over any backend, for tests.

#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"

namespace zerohop::testing {

// Parses a path that the test knows is valid.
Path P(std::string_view text);

// Blocking calls over any backend, for tests and tools.
class SyncBackend {
public:
    explicit SyncBackend(Backend* b) : b_(b) {}

    absl::StatusOr<std::vector<std::string>> ListContainers();
    absl::StatusOr<ObjectInfo> Stat(std::string_view path);
    absl::StatusOr<ListResult> List(ListRequest req);
    absl::StatusOr<ObjectInfo> Mkdir(std::string_view path, uint32_t mode = 0755);
    absl::Status Rmdir(std::string_view path);
    absl::Status Rename(std::string_view from, std::string_view to, bool no_replace = false);
    absl::StatusOr<ObjectInfo> Symlink(std::string_view path, std::string target);
    absl::StatusOr<ObjectInfo> Mknod(MknodRequest req);
    absl::StatusOr<std::string> Readlink(std::string_view path);
    absl::Status Delete(std::string_view path, std::string condition = "");
    absl::StatusOr<ObjectInfo> SetMetadata(SetMetadataRequest req);

    absl::StatusOr<std::string> Get(std::string_view path, uint64_t offset = 0,
                                    uint64_t length = std::numeric_limits<uint64_t>::max());
    absl::StatusOr<ObjectInfo> Put(std::string_view path, std::string_view data, AttributeMap attrs = {},
                                   std::string condition = "");
    absl::StatusOr<ObjectInfo> Write(std::string_view path, uint64_t offset, std::string_view data);
    absl::StatusOr<ObjectInfo> Append(std::string_view path, std::string_view data);
    absl::StatusOr<ObjectInfo> Truncate(std::string_view path, uint64_t size);

    absl::StatusOr<Item> GetItem(std::string_view path, std::vector<std::string> attrs = {});
    absl::StatusOr<GetItemsResult> GetItems(GetItemsRequest req);
    absl::StatusOr<ObjectInfo> PutItem(std::string_view path, AttributeMap attrs, std::string condition = "");
    absl::StatusOr<std::vector<absl::Status>> PutItems(std::vector<PutItemRequest> reqs);
    absl::StatusOr<ObjectInfo> UpdateItem(std::string_view path, std::string update, std::string condition = "",
                                          std::string else_update = "");

    absl::StatusOr<ObjectInfo> CreateStream(std::string_view path, uint32_t shards, int64_t retention_secs = 3600);
    absl::StatusOr<StreamDescription> DescribeStream(std::string_view path);
    absl::Status DeleteStream(std::string_view path);
    absl::StatusOr<std::vector<RecordResult>> PutRecords(std::string_view path, std::vector<RecordInput> records);
    absl::StatusOr<StreamLocation> Seek(SeekRequest req);
    absl::StatusOr<GetRecordsResult> GetRecords(std::string_view path, StreamLocation loc, uint32_t limit = 1000,
                                                uint64_t max_bytes = 8 << 20);
    absl::Status Sync();

    Backend* backend() { return b_; }

private:
    Backend* b_;
};

}  // namespace zerohop::testing
