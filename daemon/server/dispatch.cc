// From a descriptor to its backend: the descriptor is checked, the body copied out of shared
// memory once and decoded, the path checked against the session's key and routed to the
// backend its container is mounted on, and the backend's answer becomes the completion.
//
// Every operation of wire/operation_table.h goes through Serve<op>. The generic form serves
// the plain ones from the table alone (decode, route, stamp the caller, call, encode the
// result); the operations that need more have a specialization below:
//   nop, status, info, list_containers,  answered by zerohopd itself (sync fans out)
//   sync, publish/unpublish_volume
//   stat, list                           the root "/" is zerohopd's (the containers)
//   rename                               two paths, one backend
//   get_object                           the bytes go straight into the shared region
//   put_object                           the bytes come from the body, or chunk by chunk
//   put_items                            each item routed on its own
//   get_records                          at most a quarter of the session's result region
//   open_object_file                     the descriptor goes on the session socket

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstring>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "shmring/fd_passing.h"
#include "server/internal/server_impl.h"
#include "server/internal/worker.h"

namespace zerohop {

using protocol::Access;
using protocol::Descriptor;
using protocol::Op;
using protocol::OpTraits;

namespace {

// The method of Backend that serves `op`.
template <Op op>
using BackendCall = BackendMethod<static_cast<uint16_t>(op)>;

// What a request is checked and routed by (and, for a volume's session, mapped).
Path& PathOf(Path& p) { return p; }
template <typename Request>
Path& PathOf(Request& r) {
    return r.path;
}

// Operations that would take a volume's root away from its sessions.
bool RemovesItsPath(Op op) {
    return op == Op::kRmdir || op == Op::kDelete || op == Op::kDeleteStream || op == Op::kRename;
}

// Requests whose bytes are a view into the body (write, append): the body must live until
// the backend is done.
template <typename Request>
concept ViewsTheBody = requires(Request r) {
    { r.data } -> std::same_as<std::string_view&>;
};

// A get's bytes, written straight into a buffer of the session's daemon region after
// room for the result header.
class RegionSink : public DataSink {
public:
    explicit RegionSink(std::shared_ptr<Session> s) : s_(std::move(s)) {}
    ~RegionSink() override { Abandon(); }
    absl::Status Expect(uint64_t bytes) override {
        if (buffer_ && reserved_ && bytes <= *reserved_) {
            reserved_.reset();  // the bytes were (or will be) placed in what Reserve lent
            cursor_ = *buffer_ + kHeaderRoom;
            end_ = cursor_ + bytes;
            return absl::OkStatus();
        }
        Abandon();
        auto off = s_->AllocateResult(kHeaderRoom + bytes);
        if (!off) {
            return absl::ResourceExhaustedError(absl::StrFormat(
                "session %d: no room for %d bytes in the daemon buffer region (%d of %d held by "
                "unreleased results)",
                s_->id, bytes, s_->results_held(), s_->daemon_bytes()));
        }
        buffer_ = *off;
        cursor_ = *off + kHeaderRoom;
        end_ = cursor_ + bytes;
        return absl::OkStatus();
    }
    absl::Status Write(std::string_view chunk) override {
        if (!buffer_ || chunk.size() > end_ - cursor_) {
            return absl::InternalError("backend wrote more than it announced");
        }
        if (chunk.empty()) {
            return absl::OkStatus();  // (an empty view may have no data pointer at all)
        }
        std::memcpy(s_->segment.daemon_region() + cursor_, chunk.data(), chunk.size());
        cursor_ += chunk.size();
        return absl::OkStatus();
    }
    char* Placement() override { return buffer_ ? s_->segment.daemon_region() + *buffer_ + kHeaderRoom : nullptr; }
    std::optional<SinkMemory> Reserve(uint64_t at_most) override {
        Abandon();
        auto off = at_most <= s_->daemon_bytes() ? s_->AllocateResult(kHeaderRoom + at_most) : std::nullopt;
        if (!off) {
            return std::nullopt;  // no room for that much now: the bytes go the usual way
        }
        buffer_ = *off;
        reserved_ = at_most;
        return SinkMemory{.addr = s_->segment.daemon_region() + *off + kHeaderRoom,
                          .capacity = at_most,
                          .region = s_->segment.daemon_region(),
                          .region_size = s_->daemon_bytes(),
                          .region_id = s_->id};
    }
    // Frees the buffer unless Handed over to a completion.
    void Abandon() {
        if (buffer_) {
            s_->FreeResult(*buffer_);
            buffer_.reset();
        }
        reserved_.reset();
    }
    std::optional<uint64_t> Handover() { return std::exchange(buffer_, std::nullopt); }

    static constexpr uint64_t kHeaderRoom = 256;

private:
    std::shared_ptr<Session> s_;
    std::optional<uint64_t> buffer_;
    std::optional<uint64_t> reserved_;  // lent by Reserve, its count not known yet
    uint64_t cursor_ = 0, end_ = 0;
};

}  // namespace

absl::StatusOr<Backend*> Worker::Route(Call& call, Path& path, Access access) {
    const Scope* scope = call.s->scope.get();
    if (scope != nullptr && path.container() != scope->root.container()) {
        // A volume's session sees one container: the others are not there (not forbidden).
        return absl::NotFoundError(absl::StrFormat("%s: not found (this session sees only its volume)", path.str()));
    }
    ZH_RETURN_IF_ERROR(server_->Allow(*call.s, path, access == Access::kWrite));
    if (scope != nullptr) {
        if (path.is_container_root() && RemovesItsPath(static_cast<Op>(call.d.op))) {
            return absl::PermissionDeniedError(
                absl::StrFormat("%s is the volume's root: it cannot be removed or moved", path.str()));
        }
        ZH_ASSIGN_OR_RETURN(path, scope->Map(path));
    }
    ZH_ASSIGN_OR_RETURN(auto mount, server_->Route(path));
    call.backend = mount.label;
    return mount.backend;
}

template <Op op, typename Request>
void Worker::Forward(Call& call, Request req, std::shared_ptr<const std::string> keep) {
    using Result = typename OpTraits<op>::Result;
    auto backend = Route(call, PathOf(req), OpTraits<op>::kAccess);
    if (!backend.ok()) {
        return Complete(call, backend.status(), {});
    }
    if constexpr (requires { req.caller; }) {
        req.caller = call.s->OwnerOf(req.caller);
    }
    if (keep == nullptr) {
        return BackendCall<op>::Run(*backend, std::move(req), Reply<Result>(call));
    }
    BackendCall<op>::Run(*backend, std::move(req),
                         [reply = Reply<Result>(call), keep](auto r) mutable { std::move(reply)(std::move(r)); });
}

// The table's plain operations: decoded, then forwarded.
template <Op op>
void Worker::Serve(Call& call, std::string body) {
    using Request = typename OpTraits<op>::Request;
    if constexpr (ViewsTheBody<Request>) {
        auto owned = std::make_shared<const std::string>(std::move(body));
        auto req = protocol::Decode<Request>(*owned);
        if (!req.ok()) {
            return Complete(call, req.status(), {});
        }
        Forward<op>(call, std::move(*req), std::move(owned));
    } else {
        auto req = protocol::Decode<Request>(body);
        if (!req.ok()) {
            return Complete(call, req.status(), {});
        }
        Forward<op>(call, std::move(*req));
    }
}

template <>
void Worker::Serve<Op::kNop>(Call& call, std::string) {
    Complete(call, absl::OkStatus(), {});
}

template <>
void Worker::Serve<Op::kStatus>(Call& call, std::string) {
    DaemonStatus out = server_->stats();
    out.containers = server_->GrantedContainers(*call.s);
    Complete(call, absl::OkStatus(), protocol::Encode(out));
}

template <>
void Worker::Serve<Op::kInfo>(Call& call, std::string) {
    Complete(call, absl::OkStatus(), protocol::Encode(server_->info()));
}

template <>
void Worker::Serve<Op::kPublishVolume>(Call& call, std::string body) {
    auto r = protocol::Decode<PublishVolumeRequest>(body);
    if (!r.ok()) {
        return Complete(call, r.status(), {});
    }
    if (absl::Status s = server_->CheckPublish(*call.s, *r); !s.ok()) {
        return Complete(call, s, {});
    }
    auto mount = server_->Route(r->root);
    call.backend = mount->label;
    // Its root must be a directory that exists now (a volume's sub-path is made beforehand).
    Path root = r->root;
    mount->backend->Stat(std::move(root), [this, call, req = std::move(*r)](absl::StatusOr<ObjectInfo> info) mutable {
        if (info.ok() && info->type != ObjectType::kDirectory) {
            info = absl::FailedPreconditionError(absl::StrFormat("%s is not a directory", req.root.str()));
        }
        if (!info.ok()) {
            return Finish(call, info.status(), {});
        }
        auto published = server_->volumes().Publish(req);
        Finish(call, published.status(), published.ok() ? protocol::Encode(*published) : std::string());
    });
}

template <>
void Worker::Serve<Op::kUnpublishVolume>(Call& call, std::string body) {
    auto r = protocol::Decode<UnpublishVolumeRequest>(body);
    Complete(call, r.ok() ? server_->UnpublishVolume(*call.s, *r) : r.status(), {});
}

template <>
void Worker::Serve<Op::kListContainers>(Call& call, std::string) {
    Complete(call, absl::OkStatus(), protocol::Encode(server_->GrantedContainers(*call.s)));
}

template <>
void Worker::Serve<Op::kStat>(Call& call, std::string body) {
    auto p = protocol::Decode<Path>(body);
    if (!p.ok()) {
        return Complete(call, p.status(), {});
    }
    if (p->is_root()) {
        ObjectInfo root;
        root.type = ObjectType::kDirectory;
        root.mode = 0555;
        return Complete(call, absl::OkStatus(), protocol::Encode(root));
    }
    Forward<Op::kStat>(call, std::move(*p));
}

template <>
void Worker::Serve<Op::kList>(Call& call, std::string body) {
    auto r = protocol::Decode<ListRequest>(body);
    if (!r.ok()) {
        return Complete(call, r.status(), {});
    }
    if (!r->path.is_root()) {
        return Forward<Op::kList>(call, std::move(*r));
    }
    // The root lists the containers the key can read.
    ListResult out;
    for (const std::string& c : server_->GrantedContainers(*call.s)) {
        if (c.compare(0, r->prefix.size(), r->prefix) == 0 && (r->marker.empty() || c > r->marker)) {
            DirEntry e;
            e.name = c;
            e.info.type = ObjectType::kDirectory;
            e.info.mode = 0755;
            out.entries.push_back(std::move(e));
        }
    }
    Complete(call, absl::OkStatus(), protocol::Encode(out));
}

template <>
void Worker::Serve<Op::kRename>(Call& call, std::string body) {
    auto r = protocol::Decode<RenameRequest>(body);
    if (!r.ok()) {
        return Complete(call, r.status(), {});
    }
    auto from = Route(call, r->from, Access::kWrite);
    auto to = from.ok() ? Route(call, r->to, Access::kWrite) : from;
    if (!to.ok()) {
        return Complete(call, to.status(), {});
    }
    if (*from != *to) {
        return Complete(call,
                        absl::UnimplementedError(absl::StrFormat(
                            "rename %s -> %s: the containers live on different backends", r->from.str(), r->to.str())),
                        {});
    }
    (*from)->Rename(std::move(*r), Reply<NoResult>(call));
}

void Worker::GetObject(Call& call, GetObjectRequest req, Backend* b) {
    // The bytes go straight into a daemon-region buffer, after room for the result header;
    // libzerohop reads objects larger than half the region in ranges.
    req.length = std::min(req.length, call.s->daemon_bytes() / 2);
    auto sink = std::make_shared<RegionSink>(call.s);
    // The completion may run on a backend thread: it fills in the header there (the buffer
    // is this call's alone) and hands the answer to the worker.
    b->GetObject(std::move(req), sink.get(), [this, call, sink](absl::StatusOr<GetObjectResult> res) {
        std::string header = res.ok() ? protocol::Encode(*res) : std::string();
        std::optional<uint64_t> buffer = res.ok() && header.size() <= RegionSink::kHeaderRoom ? sink->Handover()
                                                                                               : std::nullopt;
        if (!buffer) {
            return Finish(call, res.ok() ? absl::InternalError("get: no result buffer") : res.status(), {});
        }
        uint64_t payload = *buffer + RegionSink::kHeaderRoom - header.size();
        std::memcpy(call.s->segment.daemon_region() + payload, header.data(), header.size());
        auto length = static_cast<uint32_t>(header.size() + res->bytes);
        OnWorker([this, call, b = *buffer, payload, length] { CompleteInPlace(call, b, payload, length); });
    });
}

template <>
void Worker::Serve<Op::kGetObject>(Call& call, std::string body) {
    auto r = protocol::Decode<GetObjectRequest>(body);
    if (!r.ok()) {
        return Complete(call, r.status(), {});
    }
    auto b = Route(call, r->path, Access::kRead);
    if (!b.ok()) {
        return Complete(call, b.status(), {});
    }
    GetObject(call, std::move(*r), *b);
}

template <>
void Worker::Serve<Op::kOpenObjectFile>(Call& call, std::string body) {
    auto p = protocol::Decode<Path>(body);
    if (!p.ok()) {
        return Complete(call, p.status(), {});
    }
    auto b = Route(call, *p, OpTraits<Op::kOpenObjectFile>::kAccess);
    if (!b.ok()) {
        return Complete(call, b.status(), {});
    }
    std::string where = p->str();
    (*b)->OpenObjectFile(std::move(*p), [this, call, where = std::move(where)](absl::StatusOr<ObjectFile> r) {
        if (!r.ok()) {
            return Finish(call, r.status(), {});
        }
        ObjectFileAnswer answer{.info = std::move(r->info)};
        if (r->fd >= 0) {
            // The descriptor goes first, tagged, on the session socket; the completion that
            // names its tag after it. Never waiting: a client that does not read its socket
            // gets an error, not a stuck worker.
            uint64_t tag = call.s->file_tags.fetch_add(1, std::memory_order_relaxed) + 1;
            absl::Status sent = shmring::SendWithFds(
                call.s->sock.get(), std::string_view(reinterpret_cast<const char*>(&tag), sizeof tag), {r->fd},
                MSG_DONTWAIT);
            if (!sent.ok()) {
                return Finish(call,
                              absl::ResourceExhaustedError(absl::StrFormat(
                                  "open_object_file %s: the descriptor cannot be sent (%s); read the session socket",
                                  where, sent.message())),
                              {});
            }
            answer.file_tag = tag;
        }
        Finish(call, absl::OkStatus(), protocol::Encode(answer));
    });
}

template <>
void Worker::Serve<Op::kPutObject>(Call& call, std::string body) {
    if (call.d.flags & protocol::kFlagChunk) {
        return AddChunk(call);
    }
    if (call.d.flags & protocol::kFlagMore) {
        return StartUpload(call, body);
    }
    // The request's bytes stay in `owned` until the backend is done with them.
    auto owned = std::make_shared<std::string>(std::move(body));
    std::string_view rest;
    auto r = protocol::DecodePrefix<PutObjectRequest>(*owned, &rest);
    if (!r.ok()) {
        return Complete(call, r.status(), {});
    }
    auto b = Route(call, r->path, Access::kWrite);
    if (!b.ok()) {
        return Complete(call, b.status(), {});
    }
    r->caller = call.s->OwnerOf(r->caller);
    auto source = std::make_shared<StringSource>(rest);
    (*b)->PutObject(std::move(*r), source.get(),
                    [reply = Reply<ObjectInfo>(call), owned, source](absl::StatusOr<ObjectInfo> r) mutable {
                        std::move(reply)(std::move(r));
                    });
}

template <>
void Worker::Serve<Op::kPutItems>(Call& call, std::string body) {
    auto items = protocol::Decode<PutItemRequests>(body);
    if (!items.ok()) {
        return Complete(call, items.status(), {});
    }
    // Each item is checked and routed on its own and gets its own status; the answer goes
    // when the last one is done, wherever that is. Metrics label it by its first item's
    // backend.
    struct Batch {
        std::vector<absl::Status> results;
        std::atomic<size_t> left;
        Done<ItemStatuses> reply;
    };
    auto batch = std::make_shared<Batch>();
    batch->results.resize(items->size());
    batch->left = items->size() + 1;  // + this loop
    auto one_done = [batch] {
        if (batch->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::move(batch->reply)(std::move(batch->results));
        }
    };
    std::vector<Backend*> backends(items->size());
    for (size_t i = 0; i < items->size(); ++i) {
        Call routed = call;
        auto b = Route(routed, (*items)[i].path, Access::kWrite);
        if (i == 0) {
            call.backend = routed.backend;
        }
        backends[i] = b.ok() ? *b : nullptr;
        batch->results[i] = b.status();
    }
    batch->reply = Reply<ItemStatuses>(call);
    for (size_t i = 0; i < items->size(); ++i) {
        if (backends[i] == nullptr) {
            one_done();
            continue;
        }
        PutItemRequest& item = (*items)[i];
        item.caller = call.s->OwnerOf(item.caller);
        backends[i]->PutItem(std::move(item), [batch, i, one_done](absl::StatusOr<ObjectInfo> r) {
            batch->results[i] = r.status();
            one_done();
        });
    }
    one_done();
}

template <>
void Worker::Serve<Op::kGetRecords>(Call& call, std::string body) {
    auto r = protocol::Decode<GetRecordsRequest>(body);
    if (!r.ok()) {
        return Complete(call, r.status(), {});
    }
    r->max_bytes = std::min<uint64_t>(r->max_bytes, call.s->daemon_bytes() / 4);
    Forward<Op::kGetRecords>(call, std::move(*r));
}

template <>
void Worker::Serve<Op::kSync>(Call& call, std::string) {
    // Every backend the session may write to; the answer carries the first error.
    std::vector<Backend*> targets;
    for (const std::string& c : server_->GrantedContainers(*call.s)) {
        auto mount = server_->Route(*Path().Child(c));
        if (mount.ok() && std::find(targets.begin(), targets.end(), mount->backend) == targets.end()) {
            targets.push_back(mount->backend);
        }
    }
    struct Syncs {
        absl::Mutex mu;
        absl::Status first ABSL_GUARDED_BY(mu);
        std::atomic<size_t> left;
        DoneStatus reply;
    };
    auto syncs = std::make_shared<Syncs>();
    syncs->left = targets.size() + 1;
    syncs->reply = Reply<NoResult>(call);
    auto one_done = [syncs](absl::Status st) {
        if (!st.ok()) {
            absl::MutexLock lock(&syncs->mu);
            syncs->first.Update(st);
        }
        if (syncs->left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            absl::Status result;
            {
                absl::MutexLock lock(&syncs->mu);
                result = syncs->first;
            }
            std::move(syncs->reply)(result);
        }
    };
    for (Backend* b : targets) {
        b->Sync(one_done);
    }
    one_done(absl::OkStatus());
}

void Worker::Dispatch(const std::shared_ptr<Session>& sp, const Descriptor& d) {
    Session& s = *sp;
    Call call{sp, d, std::chrono::steady_clock::now()};
    if (d.version != protocol::kProtocolVersion) {
        return Reject(call, absl::StrFormat("descriptor version %d; this daemon speaks %d", d.version,
                                            protocol::kProtocolVersion));
    }
    if (!protocol::IsKnownOp(d.op)) {
        // A client newer than this daemon, or garbage: either way not something it can do.
        return Reject(call, absl::UnimplementedError(absl::StrFormat(
                                "unknown operation %d (the client may be newer than this zerohopd %s)", d.op,
                                ZEROHOP_VERSION)));
    }
    Op op = static_cast<Op>(d.op);
    if (op == Op::kRelease) {
        if (!s.FreeResult(d.offset)) {
            metrics_.BadDescriptor();
            if (++s.bad_descriptors > kMaxBadDescriptors) {
                Close(s, "too many bad releases");
            }
        }
        return;  // releases are not answered
    }
    if (d.offset > s.client_bytes || d.length > s.client_bytes - d.offset) {
        return Reject(call, absl::StrFormat("payload [%d, +%d) lies outside the %d-byte client region", d.offset,
                                            d.length, s.client_bytes));
    }
    if (s.in_flight >= s.max_in_flight) {
        ++s.in_flight;  // Complete counts the answer out again
        return Complete(call,
                        absl::ResourceExhaustedError(
                            absl::StrFormat("session %d: %d requests in flight, the limit", s.id, s.max_in_flight)),
                        {});
    }
    ++s.in_flight;
    // Copy the body out once: nothing below reads shared memory again.
    std::string body = d.length == 0 ? std::string() : std::string(s.segment.client_region() + d.offset, d.length);
    switch (op) {
#define ZH_DISPATCH_Plain(Name) \
    case Op::k##Name:           \
        return Serve<Op::k##Name>(call, std::move(body));
#define ZH_DISPATCH_NoBody(Name) ZH_DISPATCH_Plain(Name)
#define ZH_DISPATCH_Sink(Name) ZH_DISPATCH_Plain(Name)
#define ZH_DISPATCH_Source(Name) ZH_DISPATCH_Plain(Name)
#define ZH_DISPATCH_File(Name) ZH_DISPATCH_Plain(Name)
#define ZH_DISPATCH_Control(Name)
#define ZH_DISPATCH(Name, number, name, Request, Result, access, repeat, shape) ZH_DISPATCH_##shape(Name)
        ZH_OPERATIONS(ZH_DISPATCH)
#undef ZH_DISPATCH
#undef ZH_DISPATCH_Plain
#undef ZH_DISPATCH_NoBody
#undef ZH_DISPATCH_Sink
#undef ZH_DISPATCH_Source
#undef ZH_DISPATCH_File
#undef ZH_DISPATCH_Control
        case Op::kRelease:  // answered above
            break;
    }
}

}  // namespace zerohop
