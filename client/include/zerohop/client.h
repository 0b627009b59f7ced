#pragma once
// libzerohop: a session with the node's zerohopd over shared-memory rings.
//
// Every operation has a synchronous form, and an asynchronous one that takes a completion;
// completions run on whichever thread calls Poll() or WaitAndPoll() (a synchronous call
// polls while it waits). Thread-safe: many threads may submit at once.
//
//   zerohop::ClientOptions opts;              // ZEROHOP_SOCKET, ZEROHOP_ACCESS_KEY by default
//   auto client = zerohop::Client::Connect(opts);
//   if (!client.ok()) return client.status();
//   auto item = (*client)->GetItem({.path = *zerohop::Path::Parse("/demo/people/alice")});
//
// When zerohopd restarts, the client reconnects by itself (within `reconnect_timeout`).
// Requests in flight at that moment that are safe to repeat (reads, stat, list, sync, ...)
// are sent again on the new session; any other fails with Unavailable and a message saying
// that its outcome is unknown, so nothing is ever applied twice without the caller knowing.

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

namespace zerohop {

struct ClientOptions {
    std::string socket_path;  // default: $ZEROHOP_SOCKET, else /run/zerohop/zerohop.sock
    std::string access_key;   // default: $ZEROHOP_ACCESS_KEY
    uint32_t submit_entries = 256;
    uint32_t complete_entries = 256;
    uint64_t client_bytes = 16 << 20;
    uint64_t daemon_bytes = 16 << 20;
    // The longest a waiter spins before sleeping; less, down to none, while the answers take
    // longer than twice this (shmring::AdaptiveSpin).
    absl::Duration spin = absl::Microseconds(50);
    absl::Duration timeout = absl::Seconds(30);    // a synchronous call gives up after this
    // How long the client keeps trying to reach a restarting daemon; zero: never reconnect.
    absl::Duration reconnect_timeout = absl::Seconds(10);
};

template <typename T>
using Callback = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;
using StatusCallback = absl::AnyInvocable<void(absl::Status) &&>;

class ObjectView;
class PutBuffer;

class Client {
public:
    static absl::StatusOr<std::unique_ptr<Client>> Connect(ClientOptions options = {});
    ~Client();

    // The daemon's id of the current session (it changes when the client reconnects).
    uint64_t session_id() const;
    // How many times the client has reconnected to a restarted daemon.
    uint64_t reconnects() const;

    // Namespace.
    absl::StatusOr<std::vector<std::string>> ListContainers();
    absl::StatusOr<ObjectInfo> Stat(const Path& path);
    absl::StatusOr<ListResult> List(const ListRequest& req);
    absl::StatusOr<ObjectInfo> Mkdir(const MkdirRequest& req);
    absl::Status Rmdir(const Path& path);
    absl::Status Rename(const RenameRequest& req);
    absl::StatusOr<ObjectInfo> Symlink(const SymlinkRequest& req);
    absl::StatusOr<ObjectInfo> Mknod(const MknodRequest& req);
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
    // Zero-copy puts: write the bytes straight into a buffer of the shared region, then put
    // it (the first `size` bytes). At most half the client region.
    absl::StatusOr<PutBuffer> AllocatePutBuffer(size_t capacity);
    absl::StatusOr<ObjectInfo> PutObject(const PutObjectRequest& req, PutBuffer buffer, size_t size);
    absl::StatusOr<ObjectInfo> WriteObject(const WriteObjectRequest& req);
    absl::StatusOr<ObjectInfo> Append(const AppendRequest& req);
    absl::StatusOr<ObjectInfo> Truncate(const TruncateRequest& req);
    // The object's bytes as a read-only file on this node, where they are one (see
    // ObjectFile); for a reader that hands it to the kernel. Needs the right to write the
    // container: a root peer holding the descriptor could reopen it for writing.
    absl::StatusOr<ObjectFile> OpenObjectFile(const Path& path);

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
    absl::StatusOr<DaemonStatus> Status();
    // The daemon's version, socket and metrics address (Unimplemented from a daemon older
    // than this call).
    absl::StatusOr<DaemonInfo> Info();
    // Volumes (an admin key only): a socket of its own for sessions scoped to `req.root`.
    // Publishing the same scope again with the same arguments is OK; with others,
    // AlreadyExists. Unpublishing closes its sessions; an unknown scope is OK.
    absl::StatusOr<PublishedVolume> PublishVolume(const PublishVolumeRequest& req);
    absl::Status UnpublishVolume(const UnpublishVolumeRequest& req);
    // A request that does nothing: measures the rings.
    absl::Status Nop();

    // Asynchronous forms: `done` runs from Poll() or WaitAndPoll() (or a waiting synchronous
    // call), exactly once.
    void ListContainersAsync(Callback<std::vector<std::string>> done);
    void StatAsync(const Path& path, Callback<ObjectInfo> done);
    void ListAsync(const ListRequest& req, Callback<ListResult> done);
    void MkdirAsync(const MkdirRequest& req, Callback<ObjectInfo> done);
    void RmdirAsync(const Path& path, StatusCallback done);
    void RenameAsync(const RenameRequest& req, StatusCallback done);
    void SymlinkAsync(const SymlinkRequest& req, Callback<ObjectInfo> done);
    void MknodAsync(const MknodRequest& req, Callback<ObjectInfo> done);
    void ReadlinkAsync(const Path& path, Callback<std::string> done);
    void DeleteAsync(const DeleteRequest& req, StatusCallback done);
    void SetMetadataAsync(const SetMetadataRequest& req, Callback<ObjectInfo> done);
    // At most half the daemon region per get, as GetObjectView.
    void GetObjectAsync(const GetObjectRequest& req, Callback<ObjectView> done);
    // At most half the client region; larger puts stream with PutObject/PutObjectFrom.
    void PutObjectAsync(const PutObjectRequest& req, std::string_view data, Callback<ObjectInfo> done);
    void WriteObjectAsync(const WriteObjectRequest& req, Callback<ObjectInfo> done);
    void AppendAsync(const AppendRequest& req, Callback<ObjectInfo> done);
    void TruncateAsync(const TruncateRequest& req, Callback<ObjectInfo> done);
    void OpenObjectFileAsync(const Path& path, Callback<ObjectFile> done);
    void GetItemAsync(const GetItemRequest& req, Callback<Item> done);
    void GetItemsAsync(const GetItemsRequest& req, Callback<GetItemsResult> done);
    void PutItemAsync(const PutItemRequest& req, Callback<ObjectInfo> done);
    void PutItemsAsync(const std::vector<PutItemRequest>& reqs, Callback<std::vector<absl::Status>> done);
    void UpdateItemAsync(const UpdateItemRequest& req, Callback<ObjectInfo> done);
    void CreateStreamAsync(const CreateStreamRequest& req, Callback<ObjectInfo> done);
    void DescribeStreamAsync(const Path& path, Callback<StreamDescription> done);
    void DeleteStreamAsync(const Path& path, StatusCallback done);
    void PutRecordsAsync(const PutRecordsRequest& req, Callback<std::vector<RecordResult>> done);
    void SeekAsync(const SeekRequest& req, Callback<StreamLocation> done);
    void GetRecordsAsync(const GetRecordsRequest& req, Callback<GetRecordsResult> done);
    void SyncAsync(StatusCallback done);
    void StatusAsync(Callback<DaemonStatus> done);
    void InfoAsync(Callback<DaemonInfo> done);
    void PublishVolumeAsync(const PublishVolumeRequest& req, Callback<PublishedVolume> done);
    void UnpublishVolumeAsync(const UnpublishVolumeRequest& req, StatusCallback done);
    void NopAsync(StatusCallback done);

    // Runs the completions that have arrived; returns how many.
    size_t Poll();
    // Waits (spinning, then sleeping) until at least one completion ran, or `timeout`.
    size_t WaitAndPoll(absl::Duration timeout);

private:
    friend class ObjectView;
    friend class PutBuffer;
    class Impl;        // reconnecting, calls and waits (client.cc)
    class Connection;  // one session: socket, segment, rings, requests in flight (connection.h)

    explicit Client(std::unique_ptr<Impl> impl);
    // A get's result (header, then the bytes) as a view that releases the buffer.
    static absl::StatusOr<ObjectView> ViewOf(std::string_view body, uint64_t buffer,
                                             const std::shared_ptr<Connection>& conn);
    // open_object_file's answer, with the descriptor its tag names taken off the socket.
    static absl::StatusOr<ObjectFile> FileOf(const absl::Status& st, std::string_view body,
                                             const std::shared_ptr<Connection>& conn);

    std::unique_ptr<Impl> impl_;
};

// Bounds the synchronous calls the constructing thread makes while this lives: each gives up
// at `deadline` (DeadlineExceeded, outcome unknown, as on the client's own timeout) when that
// comes first. Nested ones: the innermost holds until it ends.
//
//   zerohop::CallDeadline d(absl::Now() + absl::Milliseconds(5));
//   auto item = client->GetItem(req);
class CallDeadline {
public:
    explicit CallDeadline(absl::Time deadline);
    ~CallDeadline();
    CallDeadline(const CallDeadline&) = delete;
    CallDeadline& operator=(const CallDeadline&) = delete;

private:
    absl::Time previous_;
};

// The bytes of a get, in place in the daemon's buffer region (no copy), released back to
// the daemon when the view is destroyed.
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

    std::shared_ptr<Client::Connection> owner_;  // keeps the segment mapped
    uint64_t buffer_ = 0;
    std::string_view data_;
    ObjectInfo info_;
};

// Room in the client's shared region for a put's bytes, written in place. Freed when
// destroyed unless handed to PutObject.
class PutBuffer {
public:
    PutBuffer() = default;
    PutBuffer(PutBuffer&& o) noexcept;
    PutBuffer& operator=(PutBuffer&& o) noexcept;
    ~PutBuffer();

    char* data() const { return data_; }
    size_t capacity() const { return capacity_; }

private:
    friend class Client;
    void Reset();

    std::shared_ptr<Client::Connection> owner_;
    uint64_t offset_ = 0;  // of the allocation, which starts with room for the request
    char* data_ = nullptr;
    size_t capacity_ = 0;
};

}  // namespace zerohop
