#include "peer/peer.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "rdma/frame.h"
#include "wire/protocol.h"

namespace zerohop {

using protocol::Access;
using protocol::Op;
using protocol::OpTraits;

namespace {

// Room a get's answer keeps for its result header within one frame.
constexpr uint32_t kHeaderRoom = 64 << 10;
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
struct BackendCall;
#define ZH_PEER_BACKEND_CALL(Name, ...)                   \
    template <>                                           \
    struct BackendCall<Op::k##Name> {                     \
        template <typename... Args>                       \
        static void Run(Backend* b, Args&&... args) {     \
            b->Name(std::forward<Args>(args)...);         \
        }                                                 \
    };
ZH_BACKEND_OPERATIONS(ZH_PEER_BACKEND_CALL)
#undef ZH_PEER_BACKEND_CALL

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
        req->length = std::min<uint64_t>(req->length, r->max_body() - kHeaderRoom);
        auto bytes = std::make_shared<std::string>();
        auto sink = std::make_shared<StringSink>(bytes.get());
        (*backend)->GetObject(std::move(*req), sink.get(),
                              [r, bytes, sink](absl::StatusOr<GetObjectResult> res) {
                                  if (!res.ok()) {
                                      return r->Respond(res.status(), "");
                                  }
                                  std::string header = protocol::Encode(*res);
                                  std::string out(4, '\0');
                                  uint32_t len = static_cast<uint32_t>(header.size());
                                  std::memcpy(out.data(), &len, 4);
                                  out += header;
                                  out += *bytes;
                                  r->Respond(absl::OkStatus(), std::move(out));
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

void PeerServer::Serve(peer::PeerRequest request) {
    auto r = std::make_shared<peer::PeerRequest>(std::move(request));
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

absl::StatusOr<std::unique_ptr<PeerBackend>> PeerBackend::Connect(peer::PeerLoop* loop, const std::string& host,
                                                                  uint16_t port, peer::PeerKey key,
                                                                  PeerBackendOptions options) {
    auto client = loop->Dial(host, port, std::move(key));
    if (!client.ok()) {
        return client.status();
    }
    return std::unique_ptr<PeerBackend>(new PeerBackend(std::move(*client), options));
}

void PeerBackend::Call(uint16_t op, std::string request, std::string extra, peer::PeerClient::Done done) {
    client_->Call(Envelope(op, request, extra), absl::Now() + options_.timeout, std::move(done));
}

namespace {

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

#define ZH_PEER_METHOD_Plain(Name, Request, Result)                                                 \
    void PeerBackend::Name(Request req, DoneFor<Result> done) {                                     \
        Call(static_cast<uint16_t>(Op::k##Name), protocol::Encode(req), "", DecodeInto<Result>(std::move(done))); \
    }
#define ZH_PEER_METHOD_NoBody(Name, Request, Result)                                                \
    void PeerBackend::Name(DoneFor<Result> done) {                                                  \
        Call(static_cast<uint16_t>(Op::k##Name), "", "", DecodeInto<Result>(std::move(done)));      \
    }
#define ZH_PEER_METHOD_Sink(Name, Request, Result)                                                  \
    void PeerBackend::Name(Request req, DataSink* sink, DoneFor<Result> done) {                     \
        Call(static_cast<uint16_t>(Op::k##Name), protocol::Encode(req), "",                         \
             [sink, done = std::move(done)](absl::StatusOr<std::string> body) mutable {             \
                 std::move(done)(ReadInto<Result>(std::move(body), sink));                          \
             });                                                                                    \
    }
#define ZH_PEER_METHOD_Source(Name, Request, Result)                                                \
    void PeerBackend::Name(Request req, DataSource* data, DoneFor<Result> done) {                   \
        auto bytes = ReadAll(data);                                                                 \
        if (!bytes.ok()) {                                                                          \
            return std::move(done)(bytes.status());                                                 \
        }                                                                                           \
        Call(static_cast<uint16_t>(Op::k##Name), protocol::Encode(req), std::move(*bytes),          \
             DecodeInto<Result>(std::move(done)));                                                  \
    }
#define ZH_PEER_METHOD_File(Name, Request, Result)                                                  \
    void PeerBackend::Name(Request, Done<ObjectFile> done) {                                        \
        std::move(done)(absl::UnimplementedError("peer: an object's local file stays on its node")); \
    }
#define ZH_PEER_METHOD(Name, number, name, Request, Result, access, repeat, shape) \
    ZH_PEER_METHOD_##shape(Name, Request, Result)

namespace {

// A get's answer: its result, and its bytes handed to the sink.
template <typename Result>
absl::StatusOr<Result> ReadInto(absl::StatusOr<std::string> body, DataSink* sink) {
    if (!body.ok()) {
        return body.status();
    }
    std::string_view b = *body;
    uint32_t len;
    if (b.size() < 4 || (std::memcpy(&len, b.data(), 4), len > b.size() - 4)) {
        return absl::DataLossError("peer: a get's answer without its result");
    }
    auto res = protocol::Decode<Result>(b.substr(4, len));
    if (!res.ok()) {
        return res.status();
    }
    std::string_view data = b.substr(4 + len);
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

// A put's bytes, whole: they go in one frame.
absl::StatusOr<std::string> ReadAll(DataSource* data) {
    std::string out;
    if (data == nullptr) {
        return out;
    }
    if (auto size = data->size()) {
        out.reserve(std::min<uint64_t>(*size, kPeerMaxBody));
    }
    char buf[64 << 10];
    for (;;) {
        auto n = data->Read(buf, sizeof buf);
        if (!n.ok()) {
            return n.status();
        }
        if (*n == 0) {
            return out;
        }
        out.append(buf, *n);
        if (out.size() > kPeerMaxBody - kHeaderRoom) {
            return absl::ResourceExhaustedError(absl::StrFormat(
                "peer: a put of more than %d bytes does not fit one frame (streaming to a peer is not built yet)",
                kPeerMaxBody - kHeaderRoom));
        }
    }
}

}  // namespace

ZH_BACKEND_OPERATIONS(ZH_PEER_METHOD)
#undef ZH_PEER_METHOD

}  // namespace zerohop
