#pragma once
// libzerohop: a session with the node's zerohopd over shared-memory rings.
//
// Every operation has a synchronous form, and an asynchronous one that takes a completion;
// completions run on whichever thread calls Poll() (a synchronous call polls while it
// waits). Thread-safe: many threads may submit at once.
//
//   zerohop::ClientOptions opts;              // ZEROHOP_SOCKET, ZEROHOP_ACCESS_KEY by default
//   auto client = zerohop::Client::Connect(opts);
//   if (!client.ok()) return client.status();
//   auto item = (*client)->GetItem({.path = *zerohop::Path::Parse("/demo/people/alice")});
//
// Not yet (issue 3): zero-copy put buffers, transparent reconnect.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "zerohop/operations.h"
#include "zerohop/protocol.h"

namespace zerohop {

struct ClientOptions {
    std::string socket_path;  // default: $ZEROHOP_SOCKET, else /run/zerohop/zerohop.sock
    std::string access_key;   // default: $ZEROHOP_ACCESS_KEY
    uint32_t submit_entries = 256;
    uint32_t complete_entries = 256;
    uint64_t client_bytes = 16 << 20;
    uint64_t daemon_bytes = 16 << 20;
    absl::Duration spin = absl::Microseconds(50);  // how long a waiter spins before sleeping
    absl::Duration timeout = absl::Seconds(30);    // a synchronous call gives up after this
};

class ObjectView;

class Client {
public:
    // The raw completion of one request: its status and the result body (a view into the
    // daemon's buffer region, valid during the call).
    using RawDone = absl::AnyInvocable<void(absl::Status status, std::string_view body) &&>;

    static absl::StatusOr<std::unique_ptr<Client>> Connect(ClientOptions options = {});
    ~Client();

    uint64_t session_id() const;

    // Namespace.
    absl::StatusOr<std::vector<std::string>> ListContainers();
    absl::StatusOr<ObjectInfo> Stat(const Path& path);
    absl::StatusOr<ListResult> List(const ListRequest& req);
    absl::StatusOr<ObjectInfo> Mkdir(const MkdirRequest& req);
    absl::Status Rmdir(const Path& path);
    absl::Status Rename(const RenameRequest& req);
    absl::StatusOr<ObjectInfo> Symlink(const SymlinkRequest& req);
    absl::StatusOr<std::string> Readlink(const Path& path);
    absl::Status Delete(const DeleteRequest& req);
    absl::StatusOr<ObjectInfo> SetMetadata(const SetMetadataRequest& req);

    // Objects. GetObjectView gives the bytes in place (at most half the daemon buffer
    // region per call: read larger objects in ranges); GetObject copies them out and reads
    // large objects in ranges itself.
    absl::StatusOr<ObjectView> GetObjectView(const GetObjectRequest& req);
    absl::StatusOr<std::string> GetObject(const GetObjectRequest& req, ObjectInfo* info = nullptr);
    // Puts larger than half the client buffer region stream through it in chunks; the object
    // is replaced atomically when the last chunk is in (condition checked then).
    absl::StatusOr<ObjectInfo> PutObject(const PutObjectRequest& req, std::string_view data);
    // The same, pulling the bytes from `read` (returns 0 at the end): objects of any size
    // with a buffer region of any size.
    absl::StatusOr<ObjectInfo> PutObjectFrom(const PutObjectRequest& req,
                                             std::function<absl::StatusOr<size_t>(char*, size_t)> read);
    absl::StatusOr<ObjectInfo> WriteObject(const WriteObjectRequest& req);
    absl::StatusOr<ObjectInfo> Append(const AppendRequest& req);
    absl::StatusOr<ObjectInfo> Truncate(const TruncateRequest& req);

    // Items.
    absl::StatusOr<Item> GetItem(const GetItemRequest& req);
    absl::StatusOr<GetItemsResult> GetItems(const GetItemsRequest& req);
    absl::StatusOr<ObjectInfo> PutItem(const PutItemRequest& req);
    absl::StatusOr<std::vector<absl::Status>> PutItems(const std::vector<PutItemRequest>& reqs);
    absl::StatusOr<ObjectInfo> UpdateItem(const UpdateItemRequest& req);

    // Streams.
    absl::StatusOr<ObjectInfo> CreateStream(const CreateStreamRequest& req);
    absl::StatusOr<StreamDescription> DescribeStream(const Path& path);
    absl::Status DeleteStream(const Path& path);
    absl::StatusOr<std::vector<RecordResult>> PutRecords(const PutRecordsRequest& req);
    absl::StatusOr<StreamLocation> Seek(const SeekRequest& req);
    absl::StatusOr<GetRecordsResult> GetRecords(const GetRecordsRequest& req);

    absl::Status Sync();
    // The daemon's counters, and the containers this key can read.
    absl::StatusOr<protocol::DaemonStatus> Status();
    // A request that does nothing: measures the rings.
    absl::Status Nop();

    // Asynchronous forms: `done` runs from Poll() (or a waiting synchronous call).
    void GetItemAsync(const GetItemRequest& req, absl::AnyInvocable<void(absl::StatusOr<Item>) &&> done);
    void PutItemAsync(const PutItemRequest& req, absl::AnyInvocable<void(absl::StatusOr<ObjectInfo>) &&> done);
    void NopAsync(absl::AnyInvocable<void(absl::Status) &&> done);
    // Any operation, with its encoded body; for operations without a typed async form yet.
    void Submit(protocol::Op op, std::string body, RawDone done);

    // Runs the completions that have arrived; returns how many.
    size_t Poll();
    // Waits (spinning, then sleeping) until at least one completion ran, or `timeout`.
    size_t WaitAndPoll(absl::Duration timeout);

    class Impl;

private:
    explicit Client(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// The bytes of a get, in place in the daemon's buffer region (no copy), released back to
// the daemon when the view is destroyed. It must not outlive its Client.
class ObjectView {
public:
    ObjectView() = default;
    ObjectView(ObjectView&& o) noexcept;
    ObjectView& operator=(ObjectView&& o) noexcept;
    ~ObjectView();

    std::string_view data() const { return data_; }
    const ObjectInfo& info() const { return info_; }

private:
    friend class Client;
    void Reset();

    Client::Impl* owner_ = nullptr;
    uint64_t buffer_ = 0;
    std::string_view data_;
    ObjectInfo info_;
};

}  // namespace zerohop
