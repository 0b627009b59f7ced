// libFuzzer target: requests as a hostile peer holding a key sends them, over a live peer
// connection (TCP on loopback, the key handshake, credits) into a data node's PeerServer,
// which runs them on a real embedded store.
//
// Each input becomes one request body. Its first byte chooses how: the raw bytes as the
// whole envelope (operation, length, request, a put's bytes), or an envelope built around
// them with an operation the backend serves (or any number) and the last few bytes as a
// put's. The data node must answer every request, within the deadline and on the same
// connection (a bad request is an error response, never a closed connection), never
// reach a container the key is not granted, and never crash.
//
// The key may write c1 and read c2; c3 exists on the data node and is not granted.
// ZH_PEER_WRITE_SEEDS=DIR writes a seed corpus: one well-formed request per operation.

#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "embedded/embedded_backend.h"
#include "peer/peer.h"
#include "rdma/frame.h"
#include "wire/protocol.h"

namespace {

using zerohop::Backend;
using zerohop::Path;
using zerohop::protocol::Op;

const std::string kSecret = "peer-request-fuzzer-secret-0123456789";
const std::string kUngranted = "bytes of c3, which the key is not granted";

Backend* g_store = nullptr;
zerohop::peer::PeerLoop* g_caller = nullptr;
std::unique_ptr<zerohop::peer::PeerClient> g_client;
uint16_t g_port = 0;

// The operations a backend serves, by number.
constexpr uint16_t kOps[] = {
#define ZH_FUZZ_OP(Name, number, ...) number,
    ZH_BACKEND_OPERATIONS(ZH_FUZZ_OP)
#undef ZH_FUZZ_OP
};

std::string Envelope(uint16_t op, const std::string& request, const std::string& extra) {
    std::string body(6, '\0');
    uint32_t len = static_cast<uint32_t>(request.size());
    std::memcpy(body.data(), &op, 2);
    std::memcpy(body.data() + 2, &len, 4);
    return body + request + extra;
}

Path P(std::string_view s) { return *Path::Parse(s); }

void WriteSeeds(const std::string& dir) {
    using namespace zerohop;
    std::filesystem::create_directories(dir);
    int n = 0;
    // Mode 1: an envelope built around the request (byte 1: the operation's index in kOps;
    // byte 2: how many of the last bytes are a put's).
    auto seed = [&](Op op, const std::string& request, const std::string& extra = "") {
        size_t index = 0;
        while (kOps[index] != static_cast<uint16_t>(op)) {
            ++index;
        }
        std::string in;
        in += static_cast<char>(1);
        in += static_cast<char>(index);
        in += static_cast<char>(extra.size());
        std::ofstream(dir + "/seed-" + std::to_string(n++), std::ios::binary) << in << request << extra;
    };
    AttributeMap attrs = {{"v", Value::Int64(1)}, {"s", Value::String("x")}};
    seed(Op::kListContainers, "");
    seed(Op::kStat, protocol::Encode(P("/c1/a")));
    seed(Op::kList, protocol::Encode(ListRequest{.path = P("/c1"), .limit = 3, .with_attributes = true}));
    seed(Op::kMkdir, protocol::Encode(MkdirRequest{.path = P("/c1/d"), .mode = 0755, .caller = {1, 2}}));
    seed(Op::kRename, protocol::Encode(RenameRequest{.from = P("/c1/a"), .to = P("/c1/d/b")}));
    seed(Op::kSymlink, protocol::Encode(SymlinkRequest{.path = P("/c1/l"), .target = "a"}));
    seed(Op::kReadlink, protocol::Encode(P("/c1/l")));
    seed(Op::kMknod, protocol::Encode(MknodRequest{.path = P("/c1/fifo"), .special = 0010000, .mode = 0600}));
    seed(Op::kDelete, protocol::Encode(DeleteRequest{.path = P("/c1/a")}));
    seed(Op::kSetMetadata, protocol::Encode(SetMetadataRequest{.path = P("/c1/a"), .mode = 0600, .uid = 7}));
    seed(Op::kGetObject, protocol::Encode(GetObjectRequest{.path = P("/c1/a"), .offset = 1, .length = 100}));
    seed(Op::kPutObject, protocol::Encode(PutObjectRequest{.path = P("/c1/a"), .mode = 0644}), "hello");
    seed(Op::kPutObject, protocol::Encode(PutObjectRequest{.path = P("/c2/a")}), "read only");
    seed(Op::kWriteObject, protocol::Encode(WriteObjectRequest{.path = P("/c1/a"), .offset = 3, .data = "xyz"}));
    seed(Op::kAppend, protocol::Encode(AppendRequest{.path = P("/c1/a"), .data = "more"}));
    seed(Op::kTruncate, protocol::Encode(TruncateRequest{.path = P("/c1/a"), .size = 2}));
    seed(Op::kGetItem, protocol::Encode(GetItemRequest{.path = P("/c1/t/i"), .attributes = {"v"}}));
    seed(Op::kGetItems, protocol::Encode(GetItemsRequest{.path = P("/c1/t"), .filter = "v > 0", .limit = 5}));
    seed(Op::kPutItem, protocol::Encode(PutItemRequest{.path = P("/c1/t/i"), .attributes = attrs}));
    seed(Op::kPutItems,
         protocol::Encode(std::vector<PutItemRequest>{{.path = P("/c1/t/j"), .attributes = attrs},
                                                      {.path = P("/c3/t/k"), .attributes = attrs}}));
    seed(Op::kUpdateItem, protocol::Encode(UpdateItemRequest{.path = P("/c1/t/i"), .update = "SET v = v + 1",
                                                            .condition = "exists(v)"}));
    seed(Op::kCreateStream, protocol::Encode(CreateStreamRequest{.path = P("/c1/s"), .shard_count = 2}));
    seed(Op::kDescribeStream, protocol::Encode(P("/c1/s")));
    seed(Op::kPutRecords,
         protocol::Encode(PutRecordsRequest{.path = P("/c1/s"), .records = {{.data = "r"}, {.data = "q", .shard = 1}}}));
    seed(Op::kSeek, protocol::Encode(SeekRequest{.path = P("/c1/s"), .shard = 1}));
    seed(Op::kGetRecords,
         protocol::Encode(GetRecordsRequest{.path = P("/c1/s"), .location = {0, 0}, .limit = 10, .max_bytes = 1000}));
    seed(Op::kStat, protocol::Encode(P("/c3/secret")));
    // Mode 0: a whole envelope as it is.
    std::ofstream(dir + "/seed-raw", std::ios::binary)
        << static_cast<char>(0) << Envelope(static_cast<uint16_t>(Op::kStat), protocol::Encode(P("/c2")), "");
    // A streamed put's begin, part, end and abort (token 1), each an input of its own.
    std::string token("\x01\0\0\0\0\0\0\0", 8);
    auto raw = [&](const std::string& name, uint16_t op, const std::string& request, const std::string& extra) {
        std::ofstream(dir + "/seed-" + name, std::ios::binary) << static_cast<char>(0) << Envelope(op, request, extra);
    };
    raw("stream-begin", kPeerStreamBegin, token + protocol::Encode(PutObjectRequest{.path = P("/c1/big")}), "");
    raw("stream-part", kPeerStreamPart, token, "some bytes of the put");
    raw("stream-end", kPeerStreamEnd, token, "");
    raw("stream-abort", kPeerStreamAbort, token, "");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* seeds = getenv("ZH_PEER_WRITE_SEEDS")) {
        WriteSeeds(seeds);
        exit(0);
    }
    char tmpl[] = "/tmp/zh-peer-fuzz-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    zerohop::EmbeddedOptions opts;
    opts.dir = dir;
    opts.containers = {"c1", "c2", "c3"};
    opts.block_cache_bytes = 8 << 20;
    auto store = zerohop::EmbeddedBackend::Open(opts);
    if (!store.ok()) {
        fprintf(stderr, "peer_request_fuzzer: %s\n", std::string(store.status().message()).c_str());
        abort();
    }
    g_store = store->release();  // never destroyed, like the loops
    // c3 holds something the key must never reach.
    std::promise<absl::Status> put;
    zerohop::StringSource source(kUngranted);
    g_store->PutObject({.path = P("/c3/secret")}, &source, [&](absl::StatusOr<zerohop::ObjectInfo> r) {
        put.set_value(r.status());
    });
    if (!put.get_future().get().ok()) {
        abort();
    }
    absl::flat_hash_map<std::string, zerohop::PeerGrant> grants;
    grants["fuzz"] = {.secret = kSecret,
                      .containers = {{"c1", zerohop::PeerRight::kWrite}, {"c2", zerohop::PeerRight::kRead}}};
    auto* server = new zerohop::PeerServer(
        [](std::string_view c) { return c == "c1" || c == "c2" || c == "c3" ? g_store : nullptr; }, std::move(grants));
    zerohop::peer::PeerOptions o{.terms = {.max_body = zerohop::peer::kMaxFrameBody, .window = 64}};
    auto data_node = zerohop::peer::PeerLoop::Create(o);
    auto caller = zerohop::peer::PeerLoop::Create(o);
    if (!data_node.ok() || !caller.ok()) {
        abort();
    }
    auto port = (*data_node)->Listen("127.0.0.1", 0, server->Secrets(),
                                     [server](zerohop::peer::PeerRequest r) { server->Serve(std::move(r)); });
    if (!port.ok()) {
        abort();
    }
    g_port = *port;
    data_node->release();
    g_caller = caller->release();
    auto client = g_caller->Dial("127.0.0.1", g_port, {.id = "fuzz", .secret = kSecret});
    if (!client.ok()) {
        fprintf(stderr, "peer_request_fuzzer: %s\n", std::string(client.status().message()).c_str());
        abort();
    }
    g_client = std::move(*client);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 3) {
        return 0;
    }
    std::string in(reinterpret_cast<const char*>(data), size);
    std::string body;
    if (in[0] % 4 == 0) {
        body = in.substr(1);  // the envelope as it is
    } else {
        auto index = static_cast<uint8_t>(in[1]);
        uint16_t op = in[0] % 4 == 3 ? static_cast<uint16_t>(index * 7) : kOps[index % std::size(kOps)];
        std::string request = in.substr(3);
        size_t extra = std::min<size_t>(static_cast<uint8_t>(in[2]), request.size());
        body = Envelope(op, request.substr(0, request.size() - extra), request.substr(request.size() - extra));
    }
    std::promise<absl::StatusOr<std::string>> answered;
    auto future = answered.get_future();
    g_client->Call(std::move(body), absl::Now() + absl::Seconds(20),
                   [&answered](absl::StatusOr<std::string> r) mutable { answered.set_value(std::move(r)); });
    if (future.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
        fprintf(stderr, "peer_request_fuzzer: a request was not answered in 60 s\n");
        abort();
    }
    absl::StatusOr<std::string> r = future.get();
    if (!r.ok() && (absl::IsUnavailable(r.status()) || absl::IsDeadlineExceeded(r.status())) &&
        !absl::StrContains(r.status().message(), "peer:")) {
        // The transport's own failures: the data node closed the connection or never answered.
        fprintf(stderr, "peer_request_fuzzer: the connection failed a request: %s\n", r.status().ToString().c_str());
        abort();
    }
    if (!g_client->open()) {
        fprintf(stderr, "peer_request_fuzzer: the data node closed the connection after a request\n");
        abort();
    }
    if (r.ok() && absl::StrContains(*r, kUngranted)) {
        fprintf(stderr, "peer_request_fuzzer: an answer carried bytes of a container the key is not granted\n");
        abort();
    }
    // Only c1 may change: c2 is read-only to the key and c3 not there for it.
    for (const char* container : {"/c2", "/c3"}) {
        std::promise<absl::StatusOr<zerohop::ListResult>> listed;
        g_store->List({.path = P(container), .limit = 2},
                      [&](absl::StatusOr<zerohop::ListResult> l) { listed.set_value(std::move(l)); });
        auto l = listed.get_future().get();
        size_t expected = std::string(container) == "/c3" ? 1 : 0;
        if (!l.ok() || l->entries.size() != expected) {
            fprintf(stderr, "peer_request_fuzzer: %s changed through a key that may not write it\n", container);
            abort();
        }
    }
    return 0;
}
