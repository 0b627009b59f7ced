#include "zerohop/client.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "shmring/arena.h"
#include "shmring/doorbell.h"
#include "shmring/fd_passing.h"
#include "shmring/segment.h"

namespace zerohop {

using protocol::Descriptor;
using protocol::Op;

class Client::Impl {
public:
    Impl(ClientOptions o, shmring::UniqueFd sock, shmring::Segment seg, shmring::EventFd bell, uint64_t session)
        : options_(std::move(o)),
          sock_(std::move(sock)),
          segment_(std::move(seg)),
          doorbell_(std::move(bell)),
          session_id_(session),
          submit_(segment_.submit_ring()),
          complete_(segment_.complete_ring()),
          alloc_(segment_.layout().client_region.size) {}

    uint64_t session_id() const { return session_id_; }
    uint64_t daemon_bytes() const { return segment_.layout().daemon_region.size; }
    uint64_t client_bytes() const { return segment_.layout().client_region.size; }

    // A completion that may keep the result buffer (returns true): it must Release it later.
    using KeepingDone = absl::AnyInvocable<bool(absl::Status, std::string_view body, uint64_t buffer) &&>;

    uint64_t Submit(Op op, std::string_view body, RawDone done) {
        return SubmitKeeping(op, body, [d = std::move(done)](absl::Status st, std::string_view b, uint64_t) mutable {
            std::move(d)(st, b);
            return false;
        });
    }

    // Returns the request id (0 if the request failed before it was sent).
    uint64_t SubmitKeeping(Op op, std::string_view body, KeepingDone done, uint32_t flags = 0, uint64_t arg0 = 0) {
        std::optional<uint64_t> off;
        if (!body.empty()) {
            for (int attempt = 0;; ++attempt) {
                {
                    absl::MutexLock lock(&alloc_mu_);
                    off = alloc_.Allocate(body.size());
                }
                if (off || body.size() > client_bytes()) {
                    break;
                }
                // Room comes back as requests complete.
                if (Poll() == 0) {
                    std::this_thread::yield();
                }
                if (attempt > 1000000) {
                    break;
                }
            }
            if (!off) {
                (void)std::move(done)(absl::ResourceExhaustedError(absl::StrFormat(
                                          "a %d-byte request does not fit the %d-byte client buffer region",
                                          body.size(), client_bytes())),
                                      {}, 0);
                return 0;
            }
            std::memcpy(segment_.client_region() + *off, body.data(), body.size());
        }
        Descriptor d;
        d.op = static_cast<uint16_t>(op);
        d.flags = flags;
        d.arg0 = arg0;
        d.request_id = next_id_.fetch_add(1, std::memory_order_relaxed);
        d.offset = off.value_or(0);
        d.length = static_cast<uint32_t>(body.size());
        {
            absl::MutexLock lock(&pending_mu_);
            pending_.emplace(d.request_id, Pending{std::move(done), off});
        }
        Push(d);
        return d.request_id;
    }

    size_t Poll() {
        size_t n = 0;
        Descriptor c;
        shmring::SegmentHeader* h = segment_.header();
        while (complete_.PopShared(&h->complete_head, &c)) {
            ++n;
            std::optional<Pending> p;
            {
                absl::MutexLock lock(&pending_mu_);
                auto it = pending_.find(c.request_id);
                if (it != pending_.end()) {
                    p.emplace(std::move(it->second));
                    pending_.erase(it);
                }
            }
            std::string_view body;
            uint64_t region = daemon_bytes();
            if (c.length > 0 && c.offset <= region && c.length <= region - c.offset) {
                body = std::string_view(segment_.daemon_region() + c.offset, c.length);
            }
            bool kept = false;
            if (p) {
                if (p->client_offset) {
                    absl::MutexLock lock(&alloc_mu_);
                    alloc_.Free(*p->client_offset);
                }
                absl::Status status;
                if (c.status != 0) {
                    auto wire = protocol::Decode<protocol::WireStatus>(body);
                    status = wire.ok() ? wire->status
                                       : absl::Status(static_cast<absl::StatusCode>(c.status), "zerohopd: request failed");
                    body = {};
                }
                kept = std::move(p->done)(status, body, c.arg0) && c.status == 0 && c.length > 0;
            }
            if (c.length > 0 && !kept) {
                Release(c.arg0);
            }
        }
        return n;
    }

    size_t WaitAndPoll(absl::Duration timeout) {
        size_t n = Poll();
        if (n > 0) {
            return n;
        }
        shmring::SegmentHeader* h = segment_.header();
        shmring::WaitForCreator(h, [&] { return complete_.ReadyShared(&h->complete_head); }, options_.spin, timeout);
        return Poll();
    }

    // Submits and waits; `decode` turns the result body into the caller's value.
    template <typename T, typename Decode>
    absl::StatusOr<T> Call(Op op, std::string_view body, Decode decode) {
        struct Slot {
            std::atomic<bool> done{false};
            absl::StatusOr<T> result = absl::UnknownError("no completion");
        } slot;
        uint64_t id = Submit(op, body, [&slot, &decode](absl::Status st, std::string_view b) {
            slot.result = st.ok() ? decode(b) : absl::StatusOr<T>(st);
            slot.done.store(true, std::memory_order_release);
        });
        absl::Status waited = WaitFor(op, id, [&] { return slot.done.load(std::memory_order_acquire); });
        if (!waited.ok()) {
            return waited;
        }
        return std::move(slot.result);
    }

    // Submits with a keeping completion and waits for it; the completion fills the caller's
    // state. OK once the completion ran (whatever its status).
    template <typename Fn>
    absl::Status CallRaw(Op op, std::string_view body, Fn fn) {
        struct Done {
            std::atomic<bool> ran{false};
        } done;
        uint64_t id = SubmitKeeping(op, body, [&done, &fn](absl::Status st, std::string_view b, uint64_t buf) {
            bool keep = fn(st, b, buf);
            done.ran.store(true, std::memory_order_release);
            return keep;
        });
        return WaitFor(op, id, [&] { return done.ran.load(std::memory_order_acquire); });
    }

    template <typename T>
    absl::StatusOr<T> CallDecoded(Op op, std::string_view body) {
        return Call<T>(op, body, [](std::string_view b) { return protocol::Decode<T>(b); });
    }

    absl::Status CallStatus(Op op, std::string_view body) {
        struct Empty {};
        return Call<Empty>(op, body, [](std::string_view) { return absl::StatusOr<Empty>(Empty{}); }).status();
    }

    // A put in chunks of a quarter of the client region, at most two in flight: the first
    // descriptor carries the request and is answered with the result; each further chunk is
    // answered when the daemon has taken its bytes.
    absl::StatusOr<ObjectInfo> PutStreamed(const PutObjectRequest& req,
                                          const std::function<absl::StatusOr<size_t>(char*, size_t)>& read) {
        const size_t chunk = client_bytes() / 4;
        std::string buf(chunk, '\0');
        auto fill = [&](std::string* out) -> absl::StatusOr<bool> {  // true at the end of the data
            size_t have = 0;
            while (have < chunk) {
                auto n = read(buf.data() + have, chunk - have);
                if (!n.ok()) {
                    return n.status();
                }
                if (*n == 0) {
                    out->append(buf.data(), have);
                    return true;
                }
                have += *n;
            }
            out->append(buf.data(), have);
            return false;
        };
        std::string first = protocol::Encode(req);
        auto end = fill(&first);
        if (!end.ok()) {
            return end.status();
        }
        // Shared with the completions, which may run after an early return.
        struct State {
            absl::Mutex mu;
            std::atomic<bool> done{false};
            std::atomic<int> in_flight{0};
            absl::StatusOr<ObjectInfo> value = absl::UnknownError("no result");
            absl::Status chunk_error;
        };
        auto state = std::make_shared<State>();
        uint64_t id = Submit(
            Op::kPutObject, first,
            [state](absl::Status st, std::string_view b) {
                {
                    absl::MutexLock lock(&state->mu);
                    state->value = st.ok() ? protocol::Decode<ObjectInfo>(b) : absl::StatusOr<ObjectInfo>(st);
                }
                state->done.store(true, std::memory_order_release);
            },
            *end ? 0 : protocol::kFlagMore);
        while (!*end && !state->done.load(std::memory_order_acquire)) {
            std::string next;
            end = fill(&next);
            if (!end.ok()) {
                // Abandon the upload, so that the daemon fails the put and changes nothing.
                Descriptor abort;
                abort.op = static_cast<uint16_t>(Op::kPutObject);
                abort.flags = protocol::kFlagChunk;
                abort.arg0 = id;
                abort.arg1 = protocol::kAbortUpload;
                abort.request_id = next_id_.fetch_add(1, std::memory_order_relaxed);
                Push(abort);
                (void)WaitFor(Op::kPutObject, id, [&] { return state->done.load(std::memory_order_acquire); });
                return end.status();
            }
            // Pace: at most two chunks in the daemon's hands at once.
            absl::Status waited = WaitFor(Op::kPutObject, id, [&] {
                return state->in_flight.load(std::memory_order_acquire) < 2 || state->done.load(std::memory_order_acquire);
            });
            if (!waited.ok()) {
                return waited;
            }
            state->in_flight.fetch_add(1);
            Submit(
                Op::kPutObject, next,
                [state](absl::Status st, std::string_view) {
                    if (!st.ok()) {
                        absl::MutexLock lock(&state->mu);
                        if (state->chunk_error.ok()) {
                            state->chunk_error = st;
                        }
                    }
                    state->in_flight.fetch_sub(1, std::memory_order_release);
                },
                protocol::kFlagChunk | (*end ? 0 : protocol::kFlagMore), id);
        }
        absl::Status waited = WaitFor(Op::kPutObject, id, [&] {
            return state->done.load(std::memory_order_acquire) && state->in_flight.load(std::memory_order_acquire) == 0;
        });
        if (!waited.ok()) {
            return waited;
        }
        absl::MutexLock lock(&state->mu);
        if (!state->chunk_error.ok() && state->value.ok()) {
            return state->chunk_error;
        }
        return state->value;
    }

    uint64_t Submit(Op op, std::string_view body, RawDone done, uint32_t flags, uint64_t arg0 = 0) {
        return SubmitKeeping(
            op, body,
            [d = std::move(done)](absl::Status st, std::string_view b, uint64_t) mutable {
                std::move(d)(st, b);
                return false;
            },
            flags, arg0);
    }
    // Hands a result buffer back to the daemon.
    void Release(uint64_t buffer) {
        Descriptor r;
        r.op = static_cast<uint16_t>(Op::kRelease);
        r.offset = buffer;
        Push(r);
    }

    char* daemon_region() const { return segment_.daemon_region(); }

private:
    struct Pending {
        KeepingDone done;
        std::optional<uint64_t> client_offset;
    };

    void Push(const Descriptor& d) {
        shmring::SegmentHeader* h = segment_.header();
        while (!submit_.PushShared(&h->submit_tail, &d)) {
            // Full: the daemon is behind. Make sure it is awake, and help drain completions.
            shmring::NotifyCreator(h, doorbell_);
            if (Poll() == 0) {
                std::this_thread::yield();
            }
        }
        shmring::NotifyCreator(h, doorbell_);
    }

    // Polls (and sleeps) until `done()`; gives up on a timeout or a dead daemon by forgetting
    // request `id`, unless its completion is already running.
    template <typename DoneFn>
    absl::Status WaitFor(Op op, uint64_t id, DoneFn done) {
        absl::Time deadline = absl::Now() + options_.timeout;
        shmring::SegmentHeader* h = segment_.header();
        while (!done()) {
            if (Poll() > 0) {
                continue;
            }
            absl::Time now = absl::Now();
            if (now >= deadline) {
                if (Abandon(id)) {
                    return absl::DeadlineExceededError(absl::StrFormat(
                        "zerohopd did not answer %s within %s; the outcome is unknown", protocol::OpName(op),
                        absl::FormatDuration(options_.timeout)));
                }
                continue;  // it is completing right now
            }
            shmring::WaitForCreator(h, [&] { return done() || complete_.ReadyShared(&h->complete_head); },
                                    options_.spin, std::min(deadline - now, absl::Milliseconds(200)));
            if (!done() && DaemonGone() && Abandon(id)) {
                return absl::UnavailableError(absl::StrFormat(
                    "zerohopd closed the session (did it exit?); the outcome of %s is unknown", protocol::OpName(op)));
            }
        }
        return absl::OkStatus();
    }

    // Whether the daemon's end of the session socket is gone. Only on the slow path.
    bool DaemonGone() const {
        struct pollfd p = {sock_.get(), POLLRDHUP, 0};
        return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
    }

    // Forgets a request whose caller gives up; false if its completion already ran or is
    // running on another thread (then the caller waits for it).
    bool Abandon(uint64_t id) {
        absl::MutexLock lock(&pending_mu_);
        return pending_.erase(id) == 1;
    }

    ClientOptions options_;
    shmring::UniqueFd sock_;
    shmring::Segment segment_;
    shmring::EventFd doorbell_;
    uint64_t session_id_;
    shmring::RingSlots submit_;
    shmring::RingSlots complete_;
    absl::Mutex alloc_mu_;
    shmring::RegionAllocator alloc_ ABSL_GUARDED_BY(alloc_mu_);
    absl::Mutex pending_mu_;
    absl::flat_hash_map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(pending_mu_);
    std::atomic<uint64_t> next_id_{1};
};

// ---- connecting -----------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
    if (options.socket_path.empty()) {
        const char* env = std::getenv("ZEROHOP_SOCKET");
        options.socket_path = env != nullptr ? env : "/run/zerohop/zerohop.sock";
    }
    if (options.access_key.empty()) {
        const char* env = std::getenv("ZEROHOP_ACCESS_KEY");
        options.access_key = env != nullptr ? env : "";
    }
    shmring::UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (options.socket_path.size() >= sizeof addr.sun_path) {
        return absl::InvalidArgumentError(absl::StrFormat("socket path %s is too long", options.socket_path));
    }
    std::memcpy(addr.sun_path, options.socket_path.data(), options.socket_path.size());
    if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return absl::UnavailableError(absl::StrFormat("cannot reach zerohopd at %s: %s (is it running? set ZEROHOP_SOCKET)",
                                                      options.socket_path, strerror(errno)));
    }
    protocol::Hello hello;
    hello.access_key = options.access_key;
    hello.submit_entries = options.submit_entries;
    hello.complete_entries = options.complete_entries;
    hello.client_bytes = options.client_bytes;
    hello.daemon_bytes = options.daemon_bytes;
    std::string body = protocol::Encode(hello);
    std::string framed(4, '\0');
    uint32_t len = static_cast<uint32_t>(body.size());
    std::memcpy(framed.data(), &len, 4);
    framed += body;
    if (absl::Status s = shmring::SendWithFds(sock.get(), framed, {}); !s.ok()) {
        return absl::UnavailableError(absl::StrFormat("zerohopd at %s: %s", options.socket_path, s.message()));
    }
    std::vector<shmring::UniqueFd> fds;
    char head[4];
    size_t got = 0;
    while (got < 4) {
        auto n = shmring::ReceiveWithFds(sock.get(), head + got, 4 - got, &fds);
        if (!n.ok() || *n == 0) {
            return absl::UnavailableError(absl::StrFormat("zerohopd at %s closed the connection during hello",
                                                          options.socket_path));
        }
        got += *n;
    }
    std::memcpy(&len, head, 4);
    if (len == 0 || len > 4096) {
        return absl::DataLossError("zerohopd sent a malformed welcome");
    }
    std::string welcome_bytes(len, '\0');
    if (::recv(sock.get(), welcome_bytes.data(), len, MSG_WAITALL) != static_cast<ssize_t>(len)) {
        return absl::UnavailableError("zerohopd closed the connection during hello");
    }
    auto welcome = protocol::Decode<protocol::Welcome>(welcome_bytes);
    if (!welcome.ok()) {
        return absl::DataLossError("zerohopd sent a malformed welcome");
    }
    if (!welcome->status.ok()) {
        return absl::Status(welcome->status.code(),
                            absl::StrFormat("zerohopd refused the session: %s", welcome->status.message()));
    }
    if (fds.size() != 2) {
        return absl::DataLossError("zerohopd did not pass the session segment and doorbell");
    }
    auto segment = shmring::Segment::Map(std::move(fds[0]));
    if (!segment.ok()) {
        return segment.status();
    }
    auto impl = std::make_unique<Impl>(std::move(options), std::move(sock), std::move(*segment),
                                       shmring::EventFd(std::move(fds[1])), welcome->session_id);
    return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;
uint64_t Client::session_id() const { return impl_->session_id(); }

// ---- operations -------------------------------------------------------------------------------

using protocol::Encode;

absl::StatusOr<std::vector<std::string>> Client::ListContainers() {
    return impl_->CallDecoded<std::vector<std::string>>(Op::kListContainers, {});
}
absl::StatusOr<ObjectInfo> Client::Stat(const Path& p) { return impl_->CallDecoded<ObjectInfo>(Op::kStat, Encode(p)); }
absl::StatusOr<ListResult> Client::List(const ListRequest& r) {
    return impl_->CallDecoded<ListResult>(Op::kList, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::Mkdir(const MkdirRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kMkdir, Encode(r));
}
absl::Status Client::Rmdir(const Path& p) { return impl_->CallStatus(Op::kRmdir, Encode(p)); }
absl::Status Client::Rename(const RenameRequest& r) { return impl_->CallStatus(Op::kRename, Encode(r)); }
absl::StatusOr<ObjectInfo> Client::Symlink(const SymlinkRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kSymlink, Encode(r));
}
absl::StatusOr<std::string> Client::Readlink(const Path& p) {
    return impl_->CallDecoded<std::string>(Op::kReadlink, Encode(p));
}
absl::Status Client::Delete(const DeleteRequest& r) { return impl_->CallStatus(Op::kDelete, Encode(r)); }
absl::StatusOr<ObjectInfo> Client::SetMetadata(const SetMetadataRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kSetMetadata, Encode(r));
}

ObjectView::ObjectView(ObjectView&& o) noexcept
    : owner_(std::exchange(o.owner_, nullptr)), buffer_(o.buffer_), data_(o.data_), info_(std::move(o.info_)) {}

ObjectView& ObjectView::operator=(ObjectView&& o) noexcept {
    if (this != &o) {
        Reset();
        owner_ = std::exchange(o.owner_, nullptr);
        buffer_ = o.buffer_;
        data_ = o.data_;
        info_ = std::move(o.info_);
    }
    return *this;
}

ObjectView::~ObjectView() { Reset(); }

void ObjectView::Reset() {
    if (owner_ != nullptr) {
        owner_->Release(buffer_);
        owner_ = nullptr;
    }
    data_ = {};
}

absl::StatusOr<ObjectView> Client::GetObjectView(const GetObjectRequest& req) {
    struct Slot {
        std::atomic<bool> done{false};
        absl::Status status;
        std::string_view body;
        uint64_t buffer = 0;
    } slot;
    auto wait = impl_->CallRaw(Op::kGetObject, Encode(req), [&slot](absl::Status st, std::string_view b, uint64_t buf) {
        slot.status = st;
        slot.body = b;
        slot.buffer = buf;
        slot.done.store(true, std::memory_order_release);
        return st.ok();  // keep the buffer: the view releases it
    });
    if (!wait.ok()) {
        return wait;
    }
    if (!slot.status.ok()) {
        return slot.status;
    }
    ObjectView view;
    view.owner_ = impl_.get();
    view.buffer_ = slot.buffer;
    std::string_view rest;
    auto res = protocol::DecodePrefix<GetObjectResult>(slot.body, &rest);
    if (!res.ok() || rest.size() != res->bytes) {
        return absl::DataLossError("get: malformed result from zerohopd");  // the view releases the buffer
    }
    view.info_ = res->info;
    view.data_ = rest;
    return view;
}

absl::StatusOr<std::string> Client::GetObject(const GetObjectRequest& req, ObjectInfo* info) {
    // Ranges of at most a quarter of the daemon region, so that results always fit.
    const uint64_t chunk = impl_->daemon_bytes() / 4;
    std::string out;
    GetObjectRequest part = req;
    uint64_t left = req.length;
    for (;;) {
        part.length = std::min(left, chunk);
        auto view = GetObjectView(part);
        if (!view.ok()) {
            return view.status();
        }
        if (info != nullptr) {
            *info = view->info();
        }
        out.append(view->data().data(), view->data().size());
        uint64_t got = view->data().size();
        left -= got;
        part.offset += got;
        if (got < part.length || left == 0) {
            return out;
        }
    }
}

absl::StatusOr<ObjectInfo> Client::PutObject(const PutObjectRequest& req, std::string_view data) {
    std::string body = Encode(req);
    if (body.size() + data.size() <= impl_->client_bytes() / 2) {
        body.append(data.data(), data.size());
        return impl_->CallDecoded<ObjectInfo>(Op::kPutObject, body);
    }
    return PutObjectFrom(req, [data](char* buf, size_t cap) mutable -> absl::StatusOr<size_t> {
        size_t n = std::min(cap, data.size());
        std::memcpy(buf, data.data(), n);
        data.remove_prefix(n);
        return n;
    });
}

absl::StatusOr<ObjectInfo> Client::PutObjectFrom(const PutObjectRequest& req,
                                                 std::function<absl::StatusOr<size_t>(char*, size_t)> read) {
    return impl_->PutStreamed(req, std::move(read));
}

absl::StatusOr<ObjectInfo> Client::WriteObject(const WriteObjectRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kWriteObject, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::Append(const AppendRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kAppend, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::Truncate(const TruncateRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kTruncate, Encode(r));
}
absl::StatusOr<Item> Client::GetItem(const GetItemRequest& r) { return impl_->CallDecoded<Item>(Op::kGetItem, Encode(r)); }
absl::StatusOr<GetItemsResult> Client::GetItems(const GetItemsRequest& r) {
    return impl_->CallDecoded<GetItemsResult>(Op::kGetItems, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::PutItem(const PutItemRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kPutItem, Encode(r));
}
absl::StatusOr<std::vector<absl::Status>> Client::PutItems(const std::vector<PutItemRequest>& r) {
    return impl_->CallDecoded<std::vector<absl::Status>>(Op::kPutItems, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::UpdateItem(const UpdateItemRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kUpdateItem, Encode(r));
}
absl::StatusOr<ObjectInfo> Client::CreateStream(const CreateStreamRequest& r) {
    return impl_->CallDecoded<ObjectInfo>(Op::kCreateStream, Encode(r));
}
absl::StatusOr<StreamDescription> Client::DescribeStream(const Path& p) {
    return impl_->CallDecoded<StreamDescription>(Op::kDescribeStream, Encode(p));
}
absl::Status Client::DeleteStream(const Path& p) { return impl_->CallStatus(Op::kDeleteStream, Encode(p)); }
absl::StatusOr<std::vector<RecordResult>> Client::PutRecords(const PutRecordsRequest& r) {
    return impl_->CallDecoded<std::vector<RecordResult>>(Op::kPutRecords, Encode(r));
}
absl::StatusOr<StreamLocation> Client::Seek(const SeekRequest& r) {
    return impl_->CallDecoded<StreamLocation>(Op::kSeek, Encode(r));
}
absl::StatusOr<GetRecordsResult> Client::GetRecords(const GetRecordsRequest& r) {
    return impl_->CallDecoded<GetRecordsResult>(Op::kGetRecords, Encode(r));
}
absl::Status Client::Sync() { return impl_->CallStatus(Op::kSync, {}); }
absl::StatusOr<protocol::DaemonStatus> Client::Status() {
    return impl_->CallDecoded<protocol::DaemonStatus>(Op::kStatus, {});
}
absl::Status Client::Nop() { return impl_->CallStatus(Op::kNop, {}); }

void Client::GetItemAsync(const GetItemRequest& req, absl::AnyInvocable<void(absl::StatusOr<Item>) &&> done) {
    impl_->Submit(Op::kGetItem, Encode(req), [done = std::move(done)](absl::Status st, std::string_view b) mutable {
        std::move(done)(st.ok() ? protocol::Decode<Item>(b) : absl::StatusOr<Item>(st));
    });
}
void Client::PutItemAsync(const PutItemRequest& req, absl::AnyInvocable<void(absl::StatusOr<ObjectInfo>) &&> done) {
    impl_->Submit(Op::kPutItem, Encode(req), [done = std::move(done)](absl::Status st, std::string_view b) mutable {
        std::move(done)(st.ok() ? protocol::Decode<ObjectInfo>(b) : absl::StatusOr<ObjectInfo>(st));
    });
}
void Client::NopAsync(absl::AnyInvocable<void(absl::Status) &&> done) {
    impl_->Submit(Op::kNop, {}, [done = std::move(done)](absl::Status st, std::string_view) mutable {
        std::move(done)(st);
    });
}
void Client::Submit(protocol::Op op, std::string body, RawDone done) { (void)impl_->Submit(op, body, std::move(done)); }
size_t Client::Poll() { return impl_->Poll(); }
size_t Client::WaitAndPoll(absl::Duration timeout) { return impl_->WaitAndPoll(timeout); }

}  // namespace zerohop
