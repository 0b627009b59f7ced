#include "peer/peer.h"

#include <algorithm>
#include <random>
#include <thread>
#include <deque>
#include <future>
#include <mutex>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "absl/strings/str_join.h"
#include "rdma/frame.h"
#include "rdma/ibv.h"
#include "wire/protocol.h"

namespace zerohop {

using protocol::Access;
using protocol::Op;
using protocol::OpTraits;

namespace {

// Room a get's answer keeps for its result header within one frame.
constexpr uint32_t kHeaderRoom = 64 << 10;

constexpr uint16_t kStreamBegin = kPeerStreamBegin;
constexpr uint16_t kStreamPart = kPeerStreamPart;
constexpr uint16_t kStreamEnd = kPeerStreamEnd;
constexpr uint16_t kStreamAbort = kPeerStreamAbort;
constexpr size_t kStreamPartBytes = 8 << 20;
constexpr int kStreamPartsInFlight = 2;
constexpr size_t kMaxStreams = 16;
constexpr size_t kMaxStreamsPerKey = 4;  // so that one peer cannot take them all
constexpr absl::Duration kStreamIdle = absl::Seconds(30);
// The largest put sent as one message.
constexpr size_t kMaxWholePut = peer::kMaxMessage - kHeaderRoom;
// What a peer connection agrees to carry in one frame (the largest the wire allows).
constexpr uint32_t kPeerMaxBody = peer::kMaxFrameBody;

std::string Envelope(uint16_t op, std::string_view request, std::string_view extra) {
    std::string out(6, '\0');
    uint32_t len = static_cast<uint32_t>(request.size());
    std::memcpy(out.data(), &op, 2);
    std::memcpy(out.data() + 2, &len, 4);
    out.append(request);
    out.append(extra);
    return out;
}

// The method of Backend that serves `op`.
template <Op op>
using BackendCall = BackendMethod<static_cast<uint16_t>(op)>;

// The paths a request names, for the rights check.
std::vector<const Path*> PathsOf(const Path& p) { return {&p}; }
std::vector<const Path*> PathsOf(const RenameRequest& r) { return {&r.from, &r.to}; }
std::vector<const Path*> PathsOf(const PutItemRequests& items) {
    std::vector<const Path*> out;
    for (const PutItemRequest& i : items) {
        out.push_back(&i.path);
    }
    return out;
}
template <typename Request>
std::vector<const Path*> PathsOf(const Request& r) {
    return {&r.path};
}

// The answer of an operation, for the peer that asked.
template <typename Result>
auto Answer(std::shared_ptr<peer::PeerRequest> r) {
    if constexpr (std::is_same_v<Result, NoResult>) {
        return [r](absl::Status s) { r->Respond(s, ""); };
    } else {
        return [r](absl::StatusOr<Result> res) {
            r->Respond(res.status(), res.ok() ? protocol::Encode(*res) : std::string());
        };
    }
}

}  // namespace

// ---- the data node's side ----------------------------------------------------------

PeerServer::PeerServer(Route route, absl::flat_hash_map<std::string, PeerGrant> grants)
    : route_(std::move(route)), grants_(std::move(grants)) {}

peer::ListenerHandshake::SecretOf PeerServer::Secrets() const {
    return [grants = grants_](std::string_view id) -> std::optional<std::string> {
        auto it = grants.find(std::string(id));
        return it == grants.end() ? std::nullopt : std::optional<std::string>(it->second.secret);
    };
}

namespace {

// The key's containers in order (the root's backend is its first's).
std::string FirstContainer(const PeerGrant& g) {
    std::string first;
    for (const auto& [name, right] : g.containers) {
        if (first.empty() || name < first) {
            first = name;
        }
    }
    return first;
}

struct Served {
    PeerServer::Route route;
    const absl::flat_hash_map<std::string, PeerGrant>* grants;

    // The backend of the containers `paths` name, if the key may reach them with `access`.
    absl::StatusOr<Backend*> Allow(const std::string& key, const std::vector<const Path*>& paths, Access access) const {
        if (paths.empty()) {
            // An empty batch (put_items of nothing): a caller's daemon never sends one.
            return absl::InvalidArgumentError("peer: a request that names no path");
        }
        auto g = grants->find(key);
        Backend* backend = nullptr;
        for (const Path* p : paths) {
            if (p->is_root()) {
                // The root lists (and stats) through the backend of the key's first
                // container; Plain filters the listing to the key's containers.
                if (access == Access::kWrite || g == grants->end() || g->second.containers.empty()) {
                    return absl::PermissionDeniedError(
                        absl::StrFormat("peer key %s may not change the root of this node", key));
                }
                backend = route(FirstContainer(g->second));
                if (backend == nullptr) {
                    return absl::NotFoundError("no container of this key on this node");
                }
                continue;
            }
            std::string container(p->container());
            if (g == grants->end() || !g->second.containers.contains(container)) {
                // Not there for this key (whether it exists for others is not its business).
                return absl::NotFoundError(
                    absl::StrFormat("%s: not found (peer key %s reaches no container %s on this node)", p->str(), key,
                                    container));
            }
            if (access == Access::kWrite && g->second.containers.at(container) != PeerRight::kWrite) {
                return absl::PermissionDeniedError(
                    absl::StrFormat("peer key %s may only read container %s on this node", key, container));
            }
            Backend* b = route(container);
            if (b == nullptr) {
                return absl::NotFoundError(absl::StrFormat("%s: no container %s on this node", p->str(), container));
            }
            if (backend != nullptr && b != backend) {
                return absl::UnimplementedError("the containers live on different backends of the data node");
            }
            backend = b;
        }
        return backend;
    }

    template <Op op>
    void Plain(std::shared_ptr<peer::PeerRequest> r, std::string_view request) const {
        using Request = typename OpTraits<op>::Request;
        using Result = typename OpTraits<op>::Result;
        auto req = protocol::Decode<Request>(request);  // may view r's body: r outlives the call
        if (!req.ok()) {
            return r->Respond(req.status(), "");
        }
        auto backend = Allow(r->key_id(), PathsOf(*req), OpTraits<op>::kAccess);
        if (!backend.ok()) {
            return r->Respond(backend.status(), "");
        }
        if constexpr (op == Op::kList) {
            if (req->path.is_root()) {
                // The root as this key sees it: its containers only.
                const auto& mine = grants->at(r->key_id()).containers;
                return BackendCall<op>::Run(*backend, std::move(*req), [r, &mine](absl::StatusOr<ListResult> res) {
                    if (res.ok()) {
                        std::erase_if(res->entries, [&](const DirEntry& e) { return !mine.contains(e.name); });
                    }
                    Answer<ListResult>(r)(std::move(res));
                });
            }
        }
        BackendCall<op>::Run(*backend, std::move(*req), Answer<Result>(r));
    }

    template <Op op>
    void NoBody(std::shared_ptr<peer::PeerRequest> r) const {
        using Result = typename OpTraits<op>::Result;
        auto g = grants->find(r->key_id());
        if (g == grants->end() || g->second.containers.empty()) {
            return r->Respond(absl::PermissionDeniedError("peer key may reach no container on this node"), "");
        }
        if constexpr (op == Op::kListContainers) {
            // The containers this key may reach, as one list (each is a backend's).
            std::vector<std::string> names;
            for (const auto& [name, right] : g->second.containers) {
                if (route(name) != nullptr) {
                    names.push_back(name);
                }
            }
            // (sorted, as a backend lists them)
            std::sort(names.begin(), names.end());
            return r->Respond(absl::OkStatus(), protocol::Encode(names));
        } else {
            // Sync: the backend of the key's first container (a data node serves a peer
            // key's containers from one backend; see the note in peer.h).
            Backend* b = route(FirstContainer(g->second));
            if (b == nullptr) {
                return r->Respond(absl::NotFoundError("no such container on this node"), "");
            }
            BackendCall<op>::Run(b, Answer<Result>(r));
        }
    }

    void Get(std::shared_ptr<peer::PeerRequest> r, std::string_view request) const {
        auto req = protocol::Decode<GetObjectRequest>(request);
        if (!req.ok()) {
            return r->Respond(req.status(), "");
        }
        auto backend = Allow(r->key_id(), PathsOf(*req), Access::kRead);
        if (!backend.ok()) {
            return r->Respond(backend.status(), "");
        }
        req->length = std::min<uint64_t>(req->length, peer::kMaxMessage - kHeaderRoom);
        if (r->landing_capacity() > 0) {
            req->length = std::min<uint64_t>(req->length, r->landing_capacity());  // the bytes go there
        }
        // The answer is built where the bytes land: [bytes][result][u32 result length], so
        // that they are written once, by the backend, into the frame's body.
        auto out = std::make_shared<std::string>();
        auto sink = std::make_shared<StringSink>(out.get());
        (*backend)->GetObject(std::move(*req), sink.get(),
                              [r, out, sink](absl::StatusOr<GetObjectResult> res) {
                                  if (!res.ok()) {
                                      return r->Respond(res.status(), "");
                                  }
                                  sink->Finish();
                                  std::string header = protocol::Encode(*res);
                                  uint32_t len = static_cast<uint32_t>(header.size());
                                  size_t bytes = out->size();
                                  out->append(header);
                                  out->append(reinterpret_cast<const char*>(&len), 4);
                                  // With a landing, the bytes go to it and the rest in the frame.
                                  r->Respond(absl::OkStatus(), std::move(*out), r->landing_capacity() > 0 ? bytes : 0);
                              });
    }

    void Put(std::shared_ptr<peer::PeerRequest> r, std::string_view request, std::string_view data) const {
        auto req = protocol::Decode<PutObjectRequest>(request);
        if (!req.ok()) {
            return r->Respond(req.status(), "");
        }
        auto backend = Allow(r->key_id(), PathsOf(*req), Access::kWrite);
        if (!backend.ok()) {
            return r->Respond(backend.status(), "");
        }
        auto source = std::make_shared<StringSource>(data);  // views r's body
        (*backend)->PutObject(std::move(*req), source.get(),
                              [r, source](absl::StatusOr<ObjectInfo> res) {
                                  r->Respond(res.status(), res.ok() ? protocol::Encode(*res) : std::string());
                              });
    }
};

}  // namespace

// A put streamed in parts, on the data node: the parts wait here for the backend's
// PutObject, which reads them through Source on a thread of the stream's own.
struct PeerServer::Stream {
    std::string key_id;
    std::mutex mu;
    std::condition_variable cv;
    // Parts not taken yet: their bytes (views into their requests' bodies) and the requests,
    // acknowledged once their bytes are taken.
    std::deque<std::pair<std::string_view, std::shared_ptr<peer::PeerRequest>>> parts;
    bool eof = false;        // the end came: no part after it
    bool abandoned = false;  // the caller or the node gave up: nothing is applied
    std::optional<absl::StatusOr<ObjectInfo>> result;
    std::shared_ptr<peer::PeerRequest> end;  // waiting for the result

    class Source : public DataSource {
    public:
        explicit Source(std::shared_ptr<Stream> s) : s_(std::move(s)) {}
        absl::StatusOr<size_t> Read(char* buf, size_t cap) override {
            std::shared_ptr<peer::PeerRequest> taken;
            size_t n = 0;
            {
                std::unique_lock<std::mutex> lock(s_->mu);
                if (!s_->cv.wait_for(lock, absl::ToChronoNanoseconds(kStreamIdle),
                                     [&] { return !s_->parts.empty() || s_->eof || s_->abandoned; })) {
                    return absl::DeadlineExceededError(absl::StrFormat(
                        "peer: no part of a streamed put for %d s: given up, nothing applied",
                        absl::ToInt64Seconds(kStreamIdle)));
                }
                if (s_->abandoned) {
                    return absl::CancelledError("peer: the streamed put was abandoned, nothing applied");
                }
                if (s_->parts.empty()) {
                    return 0;  // the end
                }
                auto& [bytes, request] = s_->parts.front();
                n = std::min(cap, bytes.size());
                std::memcpy(buf, bytes.data(), n);
                bytes.remove_prefix(n);
                if (bytes.empty()) {
                    taken = std::move(request);
                    s_->parts.pop_front();
                }
            }
            if (taken != nullptr) {
                taken->Respond(absl::OkStatus(), "");  // the caller may send another
            }
            return n;
        }

    private:
        std::shared_ptr<Stream> s_;
    };

    // The backend's answer: to the end (now or when it comes) and to parts it never took.
    void Finish(absl::StatusOr<ObjectInfo> res) {
        std::shared_ptr<peer::PeerRequest> waiting;
        std::deque<std::pair<std::string_view, std::shared_ptr<peer::PeerRequest>>> untaken;
        {
            std::lock_guard<std::mutex> lock(mu);
            result = res;
            waiting = std::move(end);
            untaken.swap(parts);
            cv.notify_all();
        }
        for (auto& [bytes, request] : untaken) {
            request->Respond(res.ok() ? absl::FailedPreconditionError("peer: the streamed put ended before this part")
                                      : res.status(),
                             "");
        }
        if (waiting != nullptr) {
            waiting->Respond(res.status(), res.ok() ? protocol::Encode(*res) : std::string());
        }
    }
};

void PeerServer::StartStream(std::shared_ptr<peer::PeerRequest> r, std::string_view request) {
    if (request.size() < 8) {
        return r->Respond(absl::InvalidArgumentError("peer: a streamed put's begin without its token"), "");
    }
    uint64_t token;
    std::memcpy(&token, request.data(), 8);
    auto req = protocol::Decode<PutObjectRequest>(request.substr(8));
    if (!req.ok()) {
        return r->Respond(req.status(), "");
    }
    Served served{route_, &grants_};
    auto backend = served.Allow(r->key_id(), PathsOf(*req), Access::kWrite);
    if (!backend.ok()) {
        return r->Respond(backend.status(), "");
    }
    auto stream = std::make_shared<Stream>();
    stream->key_id = r->key_id();
    {
        std::lock_guard<std::mutex> lock(streams_mu_);
        size_t mine = std::count_if(streams_.begin(), streams_.end(),
                                    [&](const auto& s) { return s.second->key_id == stream->key_id; });
        if (streams_.size() >= kMaxStreams || mine >= kMaxStreamsPerKey) {
            return r->Respond(absl::ResourceExhaustedError(absl::StrFormat(
                                  "peer: %d streamed puts at once is this node's limit, %d a key's", kMaxStreams,
                                  kMaxStreamsPerKey)),
                              "");
        }
        if (!streams_.emplace(token, stream).second) {
            return r->Respond(absl::InvalidArgumentError("peer: a streamed put's token already in use"), "");
        }
    }
    std::thread([this, token, stream, backend = *backend, req = std::move(*req)]() mutable {
        Stream::Source source(stream);
        backend->PutObject(std::move(req), &source,
                           [stream](absl::StatusOr<ObjectInfo> res) { stream->Finish(std::move(res)); });
        {
            std::unique_lock<std::mutex> lock(stream->mu);  // (the source lives until the backend is done)
            stream->cv.wait(lock, [&] { return stream->result.has_value(); });
        }
        std::lock_guard<std::mutex> lock(streams_mu_);
        streams_.erase(token);
        streams_cv_.notify_all();
    }).detach();
    r->Respond(absl::OkStatus(), "");
}

void PeerServer::ContinueStream(std::shared_ptr<peer::PeerRequest> r, uint16_t op, std::string_view request,
                                std::string_view extra) {
    if (request.size() < 8) {
        return r->Respond(absl::InvalidArgumentError("peer: a streamed put's part without its token"), "");
    }
    uint64_t token;
    std::memcpy(&token, request.data(), 8);
    std::shared_ptr<Stream> stream;
    {
        std::lock_guard<std::mutex> lock(streams_mu_);
        auto it = streams_.find(token);
        if (it != streams_.end() && it->second->key_id == r->key_id()) {
            stream = it->second;
        }
    }
    if (stream == nullptr) {
        return r->Respond(absl::NotFoundError("peer: no such streamed put (it ended, or was given up)"), "");
    }
    std::unique_lock<std::mutex> lock(stream->mu);
    if (stream->result.has_value()) {
        absl::StatusOr<ObjectInfo> res = *stream->result;
        lock.unlock();
        if (op == kStreamEnd) {
            return r->Respond(res.status(), res.ok() ? protocol::Encode(*res) : std::string());
        }
        return r->Respond(res.ok() ? absl::FailedPreconditionError("peer: the streamed put has ended") : res.status(),
                          "");
    }
    if (op == kStreamAbort) {
        stream->abandoned = true;
        stream->cv.notify_all();
        lock.unlock();
        return r->Respond(absl::OkStatus(), "");
    }
    if (stream->eof) {
        lock.unlock();
        return r->Respond(absl::InvalidArgumentError("peer: a streamed put's part or end after its end"), "");
    }
    if (op == kStreamPart) {
        stream->parts.emplace_back(extra, std::move(r));  // acknowledged once taken
    } else {
        stream->eof = true;
        stream->end = std::move(r);
    }
    stream->cv.notify_all();
}

PeerServer::~PeerServer() { Close(); }

void PeerServer::Close() {
    {
        std::unique_lock<std::shared_mutex> lock(closing_);
        closed_ = true;
    }
    // Streamed puts in progress are given up (not applied); their threads end.
    std::unique_lock<std::mutex> lock(streams_mu_);
    for (auto& [token, stream] : streams_) {
        std::lock_guard<std::mutex> s(stream->mu);
        stream->abandoned = true;
        stream->cv.notify_all();
    }
    streams_cv_.wait(lock, [&] { return streams_.empty(); });
}

void PeerServer::Serve(peer::PeerRequest request) {
    auto r = std::make_shared<peer::PeerRequest>(std::move(request));
    std::shared_lock<std::shared_mutex> lock(closing_);
    if (closed_) {
        return r->Respond(absl::UnavailableError("peer: the data node is stopping"), "");
    }
    std::string_view body = r->body();
    uint16_t op;
    uint32_t len;
    if (body.size() < 6) {
        return r->Respond(absl::InvalidArgumentError("peer: a request shorter than its envelope"), "");
    }
    std::memcpy(&op, body.data(), 2);
    std::memcpy(&len, body.data() + 2, 4);
    if (len > body.size() - 6) {
        return r->Respond(absl::InvalidArgumentError(absl::StrFormat(
                              "peer: a request of %d bytes in a body of %d", len, body.size() - 6)),
                          "");
    }
    std::string_view req = body.substr(6, len);
    std::string_view extra = body.substr(6 + len);
    if (op == kStreamBegin) {
        return StartStream(r, req);
    }
    if (op == kStreamPart || op == kStreamEnd || op == kStreamAbort) {
        return ContinueStream(r, op, req, extra);
    }
    Served s{route_, &grants_};
    switch (static_cast<Op>(op)) {
#define ZH_PEER_SERVE_Plain(Name) \
    case Op::k##Name: return s.Plain<Op::k##Name>(r, req);
#define ZH_PEER_SERVE_NoBody(Name) \
    case Op::k##Name: return s.NoBody<Op::k##Name>(r);
#define ZH_PEER_SERVE_Sink(Name) \
    case Op::k##Name: return s.Get(r, req);
#define ZH_PEER_SERVE_Source(Name) \
    case Op::k##Name: return s.Put(r, req, extra);
#define ZH_PEER_SERVE_File(Name) \
    case Op::k##Name:            \
        return r->Respond(absl::UnimplementedError("peer: an object's local file stays on its node"), "");
#define ZH_PEER_SERVE(Name, number, name, Request, Result, access, repeat, shape) ZH_PEER_SERVE_##shape(Name)
        ZH_BACKEND_OPERATIONS(ZH_PEER_SERVE)
#undef ZH_PEER_SERVE
        default: break;
    }
    r->Respond(absl::InvalidArgumentError(absl::StrFormat("peer: operation %d is not one a backend serves", op)), "");
}

// ---- the calling node's side -------------------------------------------------------

namespace {
std::atomic<peer::PeerLoop*> node_loop_made{nullptr};  // once NodePeerLoop() made it
}  // namespace

peer::PeerLoop* NodePeerLoop() {
    static peer::PeerLoop* loop = [] {
        auto l = peer::PeerLoop::Create({.terms = {.max_body = kPeerMaxBody, .window = 64}});
        if (!l.ok()) {
            Log(LogLevel::kError, "the peer transport cannot start", "error", std::string(l.status().message()));
            return static_cast<peer::PeerLoop*>(nullptr);
        }
        node_loop_made.store(l->get());
        return l->release();  // lives as long as the process
    }();
    return loop;
}

void ForgetLandingRegion(char* region) {
    if (peer::PeerLoop* loop = node_loop_made.load()) {  // (none made: nothing was registered)
        loop->ForgetRegion(region);
    }
}

std::string PeerTransportMetrics() {
    peer::PeerLoop* loop = node_loop_made.load();
    if (loop == nullptr) {
        return "";
    }
    size_t rdma = loop->rdma_connections();
    return absl::StrFormat(
        "# TYPE zerohop_peer_connections gauge\nzerohop_peer_connections{transport=\"tcp\"} %d\n"
        "zerohop_peer_connections{transport=\"rdma\"} %d\n"
        "# TYPE zerohop_peer_received_into_landing_bytes_total counter\n"
        "zerohop_peer_received_into_landing_bytes_total %d\n",
        loop->connections() - rdma, rdma, loop->received_into_landings());
}

namespace {
std::atomic<peer::verbs::ConnectionManager*> node_cm{nullptr};
}  // namespace

void SetNodeConnectionManager(peer::verbs::ConnectionManager* cm) { node_cm.store(cm); }

peer::verbs::ConnectionManager* NodeConnectionManager() {
    if (peer::verbs::ConnectionManager* set = node_cm.load()) {
        return set;
    }
    // rdmacm on the machine's RDMA devices, when it has any; asked once.
    static peer::verbs::ConnectionManager* rdmacm = []() -> peer::verbs::ConnectionManager* {
        auto cm = peer::verbs::IbvConnectionManager::Open();
        if (!cm.ok()) {
            Log(LogLevel::kInfo, "peers: RDMA off, TCP only", "why", std::string(cm.status().message()));
            return nullptr;
        }
        Log(LogLevel::kInfo, "peers: RDMA on", "devices", absl::StrJoin(peer::verbs::IbvDeviceNames(), ","));
        return cm->release();  // lives as long as the process, like the node's peer loop
    }();
    return rdmacm;
}

RdmaConnector NodeRdmaConnector() {
    peer::verbs::ConnectionManager* cm = node_cm.load();
    if (cm == nullptr) {
        return nullptr;
    }
    return [cm](const std::string& host, uint16_t port) { return cm->Connect(host, port); };
}

// A call waiting for a connection, or in flight on one.
struct Pending {
    uint64_t id = 0;
    std::string body;
    absl::Time deadline;
    bool repeatable = false;
    bool resent = false;
    std::optional<peer::Landing> landing;
    peer::PeerClient::LandedDone done;  // a call without a landing gets its answer as `rest`
};

struct PeerBackend::State : std::enable_shared_from_this<State> {
    static constexpr absl::Duration kFirstBackoff = absl::Milliseconds(50);
    static constexpr absl::Duration kMaxBackoff = absl::Seconds(5);
    static constexpr size_t kMaxWaiting = 4096;

    peer::PeerLoop* loop = nullptr;
    PeerBackendOptions o;
    RdmaConnector rdma;  // null: TCP only
    std::string where;  // "peer host:port", for messages

    std::mutex mu;
    std::shared_ptr<peer::PeerClient> client;  // null: none yet, or broken
    bool dialing = false;
    bool closed = false;
    absl::Duration backoff = kFirstBackoff;
    std::deque<Pending> waiting;  // for a connection
    uint64_t next_id = 1;
    uint64_t connects = 0;  // connections made
    std::string transport = "tcp";  // of the last one
    absl::Status last_error = absl::UnavailableError("not connected yet");

    peer::PeerKey Key() const { return {.id = o.key_id, .secret = o.secret}; }

    void Send(Pending p) {
        std::unique_lock<std::mutex> lock(mu);
        if (closed) {
            lock.unlock();
            return std::move(p.done)(absl::CancelledError("peer: the mount is closing"));
        }
        if (client != nullptr && client->open()) {
            auto c = client;
            lock.unlock();
            return Issue(c, std::move(p));
        }
        if (waiting.size() >= kMaxWaiting) {
            lock.unlock();
            return std::move(p.done)(absl::ResourceExhaustedError(
                absl::StrFormat("%s: %d calls already wait for the connection", where, kMaxWaiting)));
        }
        p.id = next_id++;
        uint64_t id = p.id;
        absl::Time deadline = p.deadline;
        waiting.push_back(std::move(p));
        bool start = !dialing;
        dialing = true;
        client.reset();
        lock.unlock();
        // It fails at its deadline if no connection comes first.
        loop->RunAfter(deadline - absl::Now(), [self = shared_from_this(), id] { self->Expire(id); });
        if (start) {
            Dial();
        }
    }

    void Issue(const std::shared_ptr<peer::PeerClient>& c, Pending p) {
        std::string body = p.repeatable ? p.body : std::move(p.body);  // kept to send again
        absl::Time deadline = p.deadline;
        std::optional<peer::Landing> landing = p.landing;
        auto finish = [self = shared_from_this(), p = std::move(p)](absl::StatusOr<peer::LandedAnswer> r) mutable {
            if (!r.ok() && peer::IsConnectionLoss(r.status()) && p.repeatable && !p.resent && absl::Now() < p.deadline) {
                p.resent = true;  // safe to repeat: once more, on a new connection
                return self->Send(std::move(p));
            }
            if (!r.ok()) {
                r = self->ToLocal(r.status());
            }
            std::move(p.done)(std::move(r));
        };
        if (landing) {
            return c->CallInto(std::move(body), deadline, *landing, std::move(finish));
        }
        c->Call(std::move(body), deadline, [finish = std::move(finish)](absl::StatusOr<std::string> r) mutable {
            if (!r.ok()) {
                return std::move(finish)(r.status());
            }
            std::move(finish)(peer::LandedAnswer{.rest = std::move(*r)});
        });
    }

    // An error as the caller names things: the data node's container names in its message
    // back to this mount's.
    absl::Status ToLocal(const absl::Status& s) const {
        std::string message(s.message());
        for (const auto& [local, remote] : o.remote_of) {
            if (local == remote) {
                continue;
            }
            std::string from = "/" + remote, to = "/" + local;
            for (size_t at = message.find(from); at != std::string::npos; at = message.find(from, at + to.size())) {
                char next = at + from.size() < message.size() ? message[at + from.size()] : '\0';
                if (next == '\0' || next == '/' || next == ':' || next == ' ' || next == '"' || next == ')') {
                    message.replace(at, from.size(), to);
                }
            }
        }
        absl::Status out(s.code(), message);
        s.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
        return out;
    }

    void Dial() {
        Connect([self = shared_from_this()](auto c) { self->Dialed(std::move(c)); });
    }

    // Makes a connection to the data node: by RDMA when the mount has a way to, else (or
    // when that fails short of a refused key) by TCP.
    void Connect(peer::PeerLoop::Dialed done) {
        if (rdma) {
            auto qp = rdma(o.host, o.port);
            if (qp.ok()) {
                return loop->DialRcAsync(
                    qp->device, std::move(qp->qp), Key(),
                    [self = shared_from_this(), done = std::move(done)](
                        absl::StatusOr<std::unique_ptr<peer::PeerClient>> c) mutable {
                        if (c.ok() || absl::IsPermissionDenied(c.status())) {
                            return std::move(done)(std::move(c));
                        }
                        Log(LogLevel::kWarning, "peer: RDMA failed, using TCP", "peer", self->where, "error",
                            std::string(c.status().message()));
                        self->loop->DialAsync(self->o.host, self->o.port, self->Key(), std::move(done));
                    });
            }
            Log(LogLevel::kWarning, "peer: no RDMA path, using TCP", "peer", where, "error",
                std::string(qp.status().message()));
        }
        loop->DialAsync(o.host, o.port, Key(), std::move(done));
    }

    void Dialed(absl::StatusOr<std::unique_ptr<peer::PeerClient>> c) {
        std::unique_lock<std::mutex> lock(mu);
        std::deque<Pending> ready;
        if (c.ok()) {
            client = std::move(*c);
            ++connects;
            transport = client->transport();
            dialing = false;
            backoff = kFirstBackoff;
            ready.swap(waiting);
            auto conn = client;
            lock.unlock();
            Log(LogLevel::kInfo, "peer connected", "peer", where, "transport", std::string(conn->transport()));
            for (Pending& p : ready) {
                Issue(conn, std::move(p));
            }
            return;
        }
        last_error = c.status();
        if (absl::IsPermissionDenied(c.status()) || waiting.empty() || closed) {
            // A refused key is not going to get better by itself; nobody waits otherwise.
            dialing = false;
            if (absl::IsPermissionDenied(c.status())) {
                ready.swap(waiting);
            }
            lock.unlock();
            for (Pending& p : ready) {
                std::move(p.done)(c.status());
            }
            return;
        }
        absl::Duration wait = backoff;
        backoff = std::min(backoff * 2, kMaxBackoff);
        lock.unlock();
        Log(LogLevel::kWarning, "peer unreachable, trying again", "peer", where, "in_ms",
            absl::ToInt64Milliseconds(wait), "error", std::string(c.status().message()));
        loop->RunAfter(wait, [self = shared_from_this()] { self->Dial(); });
    }

    void Expire(uint64_t id) {
        std::unique_lock<std::mutex> lock(mu);
        auto it = std::find_if(waiting.begin(), waiting.end(), [id](const Pending& p) { return p.id == id; });
        if (it == waiting.end()) {
            return;
        }
        Pending p = std::move(*it);
        waiting.erase(it);
        absl::Status why = last_error;
        lock.unlock();
        std::move(p.done)(absl::UnavailableError(
            absl::StrFormat("%s: no connection before the call's deadline (%s)", where, why.message())));
    }
};

absl::StatusOr<std::unique_ptr<PeerBackend>> PeerBackend::Open(peer::PeerLoop* loop, PeerBackendOptions options,
                                                               RdmaConnector rdma) {
    if (loop == nullptr) {
        return absl::UnavailableError("the peer transport did not start (see the log)");
    }
    auto state = std::make_shared<State>();
    state->loop = loop;
    state->where = absl::StrFormat("peer %s:%d", options.host, options.port);
    state->o = std::move(options);
    state->rdma = std::move(rdma);
    if (absl::Status s = peer::CheckPeerKey(state->Key()); !s.ok()) {
        return s;
    }
    std::promise<absl::StatusOr<std::unique_ptr<peer::PeerClient>>> dialed;
    auto got = dialed.get_future();
    state->Connect([&dialed](absl::StatusOr<std::unique_ptr<peer::PeerClient>> c) { dialed.set_value(std::move(c)); });
    auto c = got.get();
    if (c.ok()) {
        state->client = std::move(*c);
        state->connects = 1;
        state->transport = state->client->transport();
        Log(LogLevel::kInfo, "peer connected", "peer", state->where, "transport", state->transport);
    } else if (absl::IsPermissionDenied(c.status()) || absl::IsInvalidArgument(c.status())) {
        return c.status();
    } else {
        state->last_error = c.status();  // down for now: calls wait for it
        Log(LogLevel::kWarning, "peer unreachable at start; calls will wait for it", "peer", state->where, "error",
            std::string(c.status().message()));
    }
    return std::unique_ptr<PeerBackend>(new PeerBackend(std::move(state)));
}

std::string PeerBackend::RenderMetrics() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    bool up = state_->client != nullptr && state_->client->open();
    std::string out;
    for (const std::string& mount : state_->o.containers) {
        std::string labels = absl::StrFormat("mount=\"%s\",peer=\"%s:%d\",transport=\"%s\"", mount,
                                             state_->o.host, state_->o.port, state_->transport);
        absl::StrAppendFormat(&out, "zerohop_peer_up{%s} %d\n", labels, up ? 1 : 0);
        absl::StrAppendFormat(&out, "zerohop_peer_connects_total{%s} %d\n", labels, state_->connects);
        absl::StrAppendFormat(&out, "zerohop_peer_calls_waiting{%s} %d\n", labels, state_->waiting.size());
    }
    return out;
}

PeerBackend::~PeerBackend() {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->closed = true;
    state_->client.reset();  // closes the connection (its calls fail as outcome unknown)
}

void PeerBackend::Call(uint16_t op, bool repeatable, std::string request, std::string extra,
                       peer::PeerClient::Done done) {
    state_->Send(Pending{.body = Envelope(op, request, extra),
                         .deadline = absl::Now() + state_->o.timeout,
                         .repeatable = repeatable,
                         .done = [done = std::move(done)](absl::StatusOr<peer::LandedAnswer> a) mutable {
                             if (!a.ok()) {
                                 return std::move(done)(a.status());
                             }
                             std::move(done)(std::move(a->rest));
                         }});
}

void PeerBackend::CallInto(uint16_t op, bool repeatable, std::string request, peer::Landing landing,
                           peer::PeerClient::LandedDone done) {
    state_->Send(Pending{.body = Envelope(op, request, ""),
                         .deadline = absl::Now() + state_->o.timeout,
                         .repeatable = repeatable,
                         .landing = landing,
                         .done = std::move(done)});
}

namespace {

// The paths of a request, to rename their containers.
std::vector<Path*> MutablePathsOf(Path& p) { return {&p}; }
std::vector<Path*> MutablePathsOf(RenameRequest& r) { return {&r.from, &r.to}; }
std::vector<Path*> MutablePathsOf(PutItemRequests& items) {
    std::vector<Path*> out;
    for (PutItemRequest& i : items) {
        out.push_back(&i.path);
    }
    return out;
}
template <typename Request>
std::vector<Path*> MutablePathsOf(Request& r) {
    return {&r.path};
}

// A request's containers as the data node names them.
template <typename Request>
absl::Status ToRemote(const PeerBackendOptions& o, Request& req) {
    for (Path* p : MutablePathsOf(req)) {
        if (p->is_root()) {
            continue;
        }
        std::string local(p->container());
        auto it = o.remote_of.find(local);
        if (it == o.remote_of.end()) {
            return absl::NotFoundError(absl::StrFormat("%s: container \"%s\" is not a peer mount", p->str(), local));
        }
        if (it->second != local) {
            auto mapped = Path::Parse(absl::StrCat("/", it->second, p->str().substr(1 + local.size())));
            if (!mapped.ok()) {
                return mapped.status();
            }
            *p = std::move(*mapped);
        }
    }
    return absl::OkStatus();
}

template <typename Result>
peer::PeerClient::Done DecodeInto(DoneFor<Result> done);

// The calls without a request: the mount's own containers are answered here.
template <Op op, typename Result>
void NoBodyCall(PeerBackend* b, const PeerBackendOptions& o, DoneFor<Result> done, bool repeatable) {
    if constexpr (op == Op::kListContainers) {
        std::move(done)(o.containers);
    } else {
        b->Call(static_cast<uint16_t>(op), repeatable, "", "", DecodeInto<Result>(std::move(done)));
    }
}

template <typename Result>
peer::PeerClient::Done DecodeInto(DoneFor<Result> done) {
    return [done = std::move(done)](absl::StatusOr<std::string> body) mutable {
        if constexpr (std::is_same_v<Result, NoResult>) {
            std::move(done)(body.status());
        } else {
            if (!body.ok()) {
                return std::move(done)(body.status());
            }
            std::move(done)(protocol::Decode<Result>(*body));
        }
    };
}

}  // namespace

// Each method: the request's containers renamed to the data node's, the call, the answer
// decoded. `repeat` (the table's) says whether a call may be sent again after a lost
// connection.
#define ZH_PEER_SEND(Name, repeat, request, extra, ...)                                             \
    Call(static_cast<uint16_t>(Op::k##Name), protocol::Repeat::repeat == protocol::Repeat::kRepeatable, \
         request, extra, __VA_ARGS__)
#define ZH_PEER_METHOD_Plain(Name, Request, Result, repeat)                                         \
    void PeerBackend::Name(Request req, DoneFor<Result> done) {                                     \
        if (absl::Status s = ToRemote(state_->o, req); !s.ok()) {                                   \
            return std::move(done)(s);                                                              \
        }                                                                                           \
        ZH_PEER_SEND(Name, repeat, protocol::Encode(req), "", DecodeInto<Result>(std::move(done))); \
    }
#define ZH_PEER_METHOD_NoBody(Name, Request, Result, repeat)                                        \
    void PeerBackend::Name(DoneFor<Result> done) {                                                  \
        NoBodyCall<Op::k##Name, Result>(this, state_->o, std::move(done),                          \
                                        protocol::Repeat::repeat == protocol::Repeat::kRepeatable); \
    }
#define ZH_PEER_METHOD_Sink(Name, Request, Result, repeat)                                          \
    void PeerBackend::Name(Request req, DataSink* sink, DoneFor<Result> done) {                     \
        if (absl::Status s = ToRemote(state_->o, req); !s.ok()) {                                   \
            return std::move(done)(s);                                                              \
        }                                                                                           \
        if (auto landing = LandingFor(req, sink)) {                                                 \
            return CallInto(static_cast<uint16_t>(Op::k##Name),                                     \
                            protocol::Repeat::repeat == protocol::Repeat::kRepeatable,              \
                            protocol::Encode(req), *landing,                                        \
                            [sink, done = std::move(done)](                                         \
                                absl::StatusOr<peer::LandedAnswer> a) mutable {                     \
                                std::move(done)(ReadLanded<Result>(std::move(a), sink));            \
                            });                                                                     \
        }                                                                                           \
        ZH_PEER_SEND(Name, repeat, protocol::Encode(req), "",                                       \
                     [sink, done = std::move(done)](absl::StatusOr<std::string> body) mutable {     \
                         std::move(done)(ReadInto<Result>(std::move(body), sink));                  \
                     });                                                                            \
    }
#define ZH_PEER_METHOD_Source(Name, Request, Result, repeat)                                        \
    void PeerBackend::Name(Request req, DataSource* data, DoneFor<Result> done) {                   \
        if (absl::Status s = ToRemote(state_->o, req); !s.ok()) {                                   \
            return std::move(done)(s);                                                              \
        }                                                                                           \
        std::string bytes;                                                                          \
        auto whole = ReadWhole(data, &bytes);                                                       \
        if (!whole.ok()) {                                                                          \
            return std::move(done)(whole.status());                                                 \
        }                                                                                           \
        if (!*whole) {                                                                              \
            return std::move(done)(StreamPut(this, req, std::move(bytes), data));                   \
        }                                                                                           \
        ZH_PEER_SEND(Name, repeat, protocol::Encode(req), std::move(bytes),                         \
                     DecodeInto<Result>(std::move(done)));                                          \
    }
#define ZH_PEER_METHOD_File(Name, Request, Result, repeat)                                          \
    void PeerBackend::Name(Request, Done<ObjectFile> done) {                                        \
        std::move(done)(absl::UnimplementedError("peer: an object's local file stays on its node")); \
    }
#define ZH_PEER_METHOD(Name, number, name, Request, Result, access, repeat, shape) \
    ZH_PEER_METHOD_##shape(Name, Request, Result, repeat)

namespace {

// Where a ranged get's bytes may land: memory the sink lends up front for the whole range
// (the client's session region: over RDMA the data node writes them there, over TCP this
// daemon's peer loop receives them there), or nothing (the bytes are copied from the
// answer). The range is held whole until the client releases the result, however few bytes
// come; a get of a whole object (its size unknown here) does not land.
template <typename Request>
std::optional<peer::Landing> LandingFor(const Request& req, DataSink* sink) {
    if (req.length > peer::kMaxMessage - kHeaderRoom) {
        return std::nullopt;  // the whole object, or more than one answer carries
    }
    auto mem = sink->Reserve(req.length);
    if (!mem) {
        return std::nullopt;
    }
    return peer::Landing{.addr = mem->addr,
                         .capacity = mem->capacity,
                         .region = mem->region,
                         .region_size = mem->region_size,
                         .region_id = mem->region_id};
}

// A get's answer whose bytes are already in the sink's lent memory: its result (the rest).
template <typename Result>
absl::StatusOr<Result> ReadLanded(absl::StatusOr<peer::LandedAnswer> a, DataSink* sink) {
    if (!a.ok()) {
        return a.status();
    }
    std::string_view b = a->rest;  // [result][u32 result length]
    uint32_t len;
    if (b.size() < 4 || (std::memcpy(&len, b.data() + b.size() - 4, 4), len != b.size() - 4)) {
        return absl::DataLossError("peer: a get's answer without its result");
    }
    auto res = protocol::Decode<Result>(b.substr(0, len));
    if (!res.ok()) {
        return res.status();
    }
    if (a->landed != res->bytes) {
        return absl::DataLossError(
            absl::StrFormat("peer: a get's answer says %d bytes and landed %d", res->bytes, a->landed));
    }
    if (absl::Status s = sink->Expect(a->landed); !s.ok()) {  // they are in place already
        return s;
    }
    return res;
}

// A get's answer: its result, and its bytes handed to the sink.
template <typename Result>
absl::StatusOr<Result> ReadInto(absl::StatusOr<std::string> body, DataSink* sink) {
    if (!body.ok()) {
        return body.status();
    }
    std::string_view b = *body;  // [bytes][result][u32 result length]
    uint32_t len;
    if (b.size() < 4 || (std::memcpy(&len, b.data() + b.size() - 4, 4), len > b.size() - 4)) {
        return absl::DataLossError("peer: a get's answer without its result");
    }
    auto res = protocol::Decode<Result>(b.substr(b.size() - 4 - len, len));
    if (!res.ok()) {
        return res.status();
    }
    std::string_view data = b.substr(0, b.size() - 4 - len);
    if (data.size() != res->bytes) {
        return absl::DataLossError(
            absl::StrFormat("peer: a get's answer says %d bytes and carries %d", res->bytes, data.size()));
    }
    if (absl::Status s = sink->Expect(data.size()); !s.ok()) {
        return s;
    }
    if (char* place = sink->Placement(); place != nullptr) {
        if (!data.empty()) {
            std::memcpy(place, data.data(), data.size());
        }
    } else if (absl::Status s = sink->Write(data); !s.ok()) {
        return s;
    }
    return res;
}

// Reads up to `max` bytes of `data` into *out (appended); true when the source ended.
absl::StatusOr<bool> ReadUpTo(DataSource* data, size_t max, std::string* out) {
    size_t start = out->size();
    out->resize(start + max);
    size_t got = 0;
    while (got < max) {
        auto n = data->Read(out->data() + start + got, max - got);
        if (!n.ok()) {
            return n.status();
        }
        if (*n == 0) {
            out->resize(start + got);
            return true;
        }
        got += *n;
    }
    return false;  // (full: whether more follows is for the next read to say)
}

// A put's bytes into *out when they fit one message: true. False (with the first part of
// them in *out) when they do not, or when their size is not known and they are more than a
// part: the put streams.
absl::StatusOr<bool> ReadWhole(DataSource* data, std::string* out) {
    if (data == nullptr) {
        return true;
    }
    std::optional<uint64_t> size = data->size();
    if (size && *size <= kMaxWholePut) {
        auto ended = ReadUpTo(data, *size + 1, out);  // (one more: a source larger than it said)
        if (ended.ok() && !*ended) {
            return absl::InvalidArgumentError("put: the source has more bytes than its size says");
        }
        return ended.ok() ? absl::StatusOr<bool>(true) : ended.status();
    }
    if (size) {
        auto ended = ReadUpTo(data, kStreamPartBytes, out);
        return ended.ok() ? absl::StatusOr<bool>(false) : ended.status();
    }
    return ReadUpTo(data, kStreamPartBytes, out);
}

// Calls `op` and waits for its answer (on the calling thread, which may block).
absl::StatusOr<std::string> CallAndWait(PeerBackend* b, uint16_t op, std::string request, std::string extra) {
    std::promise<absl::StatusOr<std::string>> answered;
    auto got = answered.get_future();
    b->Call(op, false, std::move(request), std::move(extra),
            [&answered](absl::StatusOr<std::string> r) { answered.set_value(std::move(r)); });
    return got.get();
}

std::string Token(uint64_t token) { return std::string(reinterpret_cast<const char*>(&token), 8); }

// A put too large for one message, in parts (peer.h, "Streamed puts"): `first` is its first
// part, read already; the rest comes from `data`. Runs on the calling thread.
absl::StatusOr<ObjectInfo> StreamPut(PeerBackend* b, const PutObjectRequest& req, std::string first, DataSource* data) {
    static thread_local std::mt19937_64 random{std::random_device{}()};
    uint64_t token = random();
    auto failed = [&](const absl::Status& s) {
        (void)CallAndWait(b, kStreamAbort, Token(token), "");  // (given up after a while anyway)
        return absl::Status(s.code(), absl::StrFormat("peer: a streamed put failed before its end, nothing was "
                                                      "applied: %s",
                                                      s.message()));
    };
    if (auto begun = CallAndWait(b, kStreamBegin, Token(token) + protocol::Encode(req), ""); !begun.ok()) {
        return absl::Status(begun.status().code(), absl::StrFormat("peer: a streamed put did not start, nothing was "
                                                                   "applied: %s",
                                                                   begun.status().message()));
    }
    // Parts go with at most kStreamPartsInFlight unacknowledged (each is acknowledged once the
    // data node's backend has taken it): the data node holds no more than that.
    std::deque<std::future<absl::StatusOr<std::string>>> acks;
    std::string part = std::move(first);
    bool ended = false;
    for (;;) {
        auto acked = std::make_shared<std::promise<absl::StatusOr<std::string>>>();
        acks.push_back(acked->get_future());
        b->Call(kStreamPart, false, Token(token), std::move(part),
                [acked](absl::StatusOr<std::string> r) { acked->set_value(std::move(r)); });
        while (acks.size() >= kStreamPartsInFlight || (ended && !acks.empty())) {
            auto r = acks.front().get();
            acks.pop_front();
            if (!r.ok()) {
                return failed(r.status());
            }
        }
        if (ended) {
            break;
        }
        part.clear();
        auto more = ReadUpTo(data, kStreamPartBytes, &part);
        if (!more.ok()) {
            return failed(more.status());
        }
        ended = *more;
        if (part.empty()) {
            while (!acks.empty()) {
                auto r = acks.front().get();
                acks.pop_front();
                if (!r.ok()) {
                    return failed(r.status());
                }
            }
            break;
        }
    }
    auto answer = CallAndWait(b, kStreamEnd, Token(token), "");
    if (!answer.ok()) {
        return answer.status();  // (lost: outcome unknown, as the transport says)
    }
    return protocol::Decode<ObjectInfo>(*answer);
}

}  // namespace

ZH_BACKEND_OPERATIONS(ZH_PEER_METHOD)
#undef ZH_PEER_METHOD

}  // namespace zerohop
