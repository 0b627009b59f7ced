// The peer backend against the shared conformance suite: every operation goes over the peer
// transport (TCP on loopback, or RDMA over a simulated device; the key handshake, credits)
// to a data node's PeerServer, which runs it on an embedded backend.

#include <stdlib.h>

#include <filesystem>
#include <future>
#include <map>

#include "conformance/backend_conformance.h"
#include "embedded/embedded_backend.h"
#include "peer/peer.h"
#include "rdma/frame.h"
#include "rdma/sim_verbs.h"
#include "wire/protocol.h"

namespace zerohop::testing {
namespace {

const std::string kSecret = "conformance-peer-secret-0123456789";

// The data node (an embedded backend behind a server) and the caller's loop.
struct Rig {
    // A fabric joining the two nodes' simulated RDMA devices (declared first: it goes last).
    peer::verbs::SimFabric fabric;
    std::unique_ptr<peer::verbs::SimDevice> caller_device = fabric.NewDevice("sim-caller");
    std::unique_ptr<peer::verbs::SimDevice> node_device = fabric.NewDevice("sim-node");
    std::string dir;
    std::unique_ptr<Backend> store;
    std::unique_ptr<PeerServer> server;
    std::unique_ptr<peer::PeerLoop> data_node;
    std::unique_ptr<peer::PeerLoop> caller;
    uint16_t port = 0;
    ~Rig() {
        caller.reset();  // (the peer backend, gone already, was dialed from it)
        data_node.reset();
        server.reset();
        store.reset();
        std::filesystem::remove_all(dir);
    }
};

std::shared_ptr<Rig> MakeRig(absl::flat_hash_map<std::string, PeerGrant> grants) {
    auto rig = std::make_shared<Rig>();
    char tmpl[] = "/tmp/zh-peer-conformance-XXXXXX";
    rig->dir = mkdtemp(tmpl);
    EmbeddedOptions opts;
    opts.dir = rig->dir;
    opts.containers = {"c1", "c2"};
    opts.block_cache_bytes = 8 << 20;
    auto store = EmbeddedBackend::Open(opts);
    if (!store.ok()) {
        ADD_FAILURE() << store.status();
        return nullptr;
    }
    rig->store = std::move(*store);
    Backend* b = rig->store.get();
    rig->server = std::make_unique<PeerServer>(
        [b](std::string_view container) { return container == "c1" || container == "c2" ? b : nullptr; },
        std::move(grants));
    peer::PeerOptions o{.terms = {.max_body = peer::kMaxFrameBody, .window = 64}};
    auto data_node = peer::PeerLoop::Create(o);
    auto caller = peer::PeerLoop::Create(o);
    if (!data_node.ok() || !caller.ok()) {
        ADD_FAILURE() << "peer loops: " << data_node.status() << " " << caller.status();
        return nullptr;
    }
    rig->data_node = std::move(*data_node);
    rig->caller = std::move(*caller);
    PeerServer* server = rig->server.get();
    auto port = rig->data_node->Listen("127.0.0.1", 0, server->Secrets(),
                                       [server](peer::PeerRequest r) { server->Serve(std::move(r)); });
    if (!port.ok()) {
        ADD_FAILURE() << port.status();
        return nullptr;
    }
    rig->port = *port;
    return rig;
}

PeerBackendOptions Mount(const Rig& rig, std::map<std::string, std::string> remote_of, std::string key_id,
                         std::string secret) {
    PeerBackendOptions o;
    for (const auto& [local, remote] : remote_of) {
        o.containers.push_back(local);
    }
    o.remote_of = std::move(remote_of);
    o.host = "127.0.0.1";
    o.port = rig.port;
    o.key_id = std::move(key_id);
    o.secret = std::move(secret);
    o.timeout = absl::Seconds(10);
    return o;
}

// RDMA to the rig's data node, as rdmacm would connect it: the node's side of a new queue
// pair served (its receives posted), the caller's side handed to the mount.
RdmaConnector SimRdma(Rig* rig, peer::verbs::SimQpOptions qp_options = {.rnr_retry = 2000}) {
    return [rig, qp_options](const std::string&, uint16_t) -> absl::StatusOr<RcConnected> {
        auto [mine, theirs] = rig->fabric.Connect(*rig->caller_device, *rig->node_device, qp_options);
        PeerServer* server = rig->server.get();
        rig->data_node->ServeRc(rig->node_device.get(), std::move(theirs), server->Secrets(),
                                [server](peer::PeerRequest r) { server->Serve(std::move(r)); });
        return RcConnected{rig->caller_device.get(), std::move(mine)};
    };
}

BackendUnderTest MakePeer(bool rdma) {
    auto rig = MakeRig({{"node-a", PeerGrant{kSecret, {{"c1", PeerRight::kWrite}, {"c2", PeerRight::kWrite}}}}});
    if (rig == nullptr) {
        return {};
    }
    auto backend = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}, {"c2", "c2"}}, "node-a", kSecret),
                                     rdma ? SimRdma(rig.get()) : nullptr);
    if (!backend.ok()) {
        ADD_FAILURE() << backend.status();
        return {};
    }
    return {std::move(*backend), [rig]() mutable { rig.reset(); }};
}

// What each peer key reaches is what its grant says: other containers are not there, a
// read grant reads and cannot write, and a key the node does not know is refused.
TEST(PeerServer, APeerKeyReachesOnlyItsContainersWithItsRights) {
    const std::string reader_secret = "the-reader-key-secret-0123456789";
    auto rig = MakeRig({{"writer", PeerGrant{kSecret, {{"c1", PeerRight::kWrite}, {"c2", PeerRight::kWrite}}}},
                        {"reader", PeerGrant{reader_secret, {{"c1", PeerRight::kRead}}}}});
    ASSERT_NE(rig, nullptr);
    auto writer = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}, {"c2", "c2"}}, "writer", kSecret));
    // The reader's mount asks for both containers; its grant gives it one.
    auto reader = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}, {"c2", "c2"}}, "reader", reader_secret));
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE(reader.ok()) << reader.status();
    SyncBackend w(writer->get()), r(reader->get());
    ASSERT_TRUE(w.Put("/c1/shared", "for both").ok());
    ASSERT_TRUE(w.Put("/c2/private", "writer only").ok());

    auto got = r.Get("/c1/shared");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, "for both");
    EXPECT_EQ(r.Put("/c1/shared", "overwritten").status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(r.Get("/c2/private").status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(r.Stat("/c2").status().code(), absl::StatusCode::kNotFound);
    auto root = r.List({.path = *Path::Parse("/")});
    ASSERT_TRUE(root.ok()) << root.status();
    ASSERT_EQ(root->entries.size(), 1u);
    EXPECT_EQ(root->entries[0].name, "c1");
    EXPECT_EQ(r.Rename("/c1/shared", "/c1/moved").code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(w.Get("/c1/shared").value_or(""), "for both") << "refused calls change nothing";

    auto stranger = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}}, "stranger", kSecret));
    EXPECT_EQ(stranger.status().code(), absl::StatusCode::kPermissionDenied) << stranger.status();
    // The operation that hands out a local file has none to give across nodes.
    // A mount may name a container otherwise than the data node does.
    auto renamed = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"mine", "c1"}}, "writer", kSecret));
    ASSERT_TRUE(renamed.ok()) << renamed.status();
    SyncBackend m(renamed->get());
    ASSERT_TRUE(m.Put("/mine/via-another-name", "x").ok());
    EXPECT_EQ(w.Get("/c1/via-another-name").value_or(""), "x");
    EXPECT_EQ(*m.ListContainers(), std::vector<std::string>{"mine"});
    EXPECT_EQ(m.Get("/c2/private").status().code(), absl::StatusCode::kNotFound) << "c2 is not this mount's";
    auto file = Await<ObjectFile>([&](auto done) { (*writer)->OpenObjectFile(*Path::Parse("/c1/shared"), std::move(done)); });
    EXPECT_EQ(file.status().code(), absl::StatusCode::kUnimplemented);
}

// A request no caller's daemon sends (found by peer_request_fuzzer: a batch of no items,
// which routed to no backend) is an error answer; the connection and the node go on.
TEST(PeerServer, ARequestThatNamesNoPathIsRefusedAndTheConnectionGoesOn) {
    auto rig = MakeRig({{"writer", PeerGrant{kSecret, {{"c1", PeerRight::kWrite}}}}});
    ASSERT_NE(rig, nullptr);
    auto writer = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}}, "writer", kSecret));
    ASSERT_TRUE(writer.ok()) << writer.status();
    auto none = Await<ItemStatuses>([&](auto done) { (*writer)->PutItems({}, std::move(done)); });
    EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument) << none.status();
    SyncBackend w(writer->get());
    EXPECT_TRUE(w.Put("/c1/after", "still served").ok());
}

// A sink that lends memory up front, as the daemon's session region does.
struct LendingSink : DataSink {
    std::string region = std::string(4 << 20, '\0');
    uint64_t lent = 0, expected = 0;
    bool placed = false;
    std::optional<SinkMemory> Reserve(uint64_t at_most) override {
        if (at_most > region.size() - 4096) {
            return std::nullopt;
        }
        lent = at_most;
        return SinkMemory{.addr = region.data() + 4096,
                          .capacity = at_most,
                          .region = region.data(),
                          .region_size = region.size(),
                          .region_id = 1};
    }
    absl::Status Expect(uint64_t bytes) override {
        expected = bytes;
        placed = lent > 0 && bytes <= lent;
        return absl::OkStatus();
    }
    absl::Status Write(std::string_view) override { return absl::InternalError("the bytes should have landed"); }
    char* Placement() override { return placed ? region.data() + 4096 : nullptr; }
};

TEST(PeerRdmaMount, AGetLandsInTheMemoryItsSinkLentWrittenByTheDataNode) {
    auto rig = MakeRig({{"node-a", PeerGrant{kSecret, {{"c1", PeerRight::kWrite}}}}});
    ASSERT_NE(rig, nullptr);
    auto mount = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}}, "node-a", kSecret), SimRdma(rig.get()));
    ASSERT_TRUE(mount.ok()) << mount.status();
    EXPECT_NE((*mount)->RenderMetrics().find("transport=\"rdma\""), std::string::npos) << (*mount)->RenderMetrics();
    std::string data(3 << 20, '\0');
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<char>(i * 7 % 253);
    }
    SyncBackend b(mount->get());
    ASSERT_TRUE(b.Put("/c1/big", data).ok());
    for (int i = 0; i < 3; ++i) {
        LendingSink sink;
        auto got = Await<GetObjectResult>([&](auto done) {
            (*mount)->GetObject({.path = *Path::Parse("/c1/big"), .offset = 1000, .length = 2 << 20}, &sink,
                                std::move(done));
        });
        ASSERT_TRUE(got.ok()) << got.status();
        EXPECT_EQ(got->bytes, 2u << 20);
        EXPECT_EQ(sink.expected, 2u << 20);
        ASSERT_TRUE(sink.placed);
        EXPECT_TRUE(sink.region.compare(4096, 2 << 20, data, 1000, 2 << 20) == 0) << "the bytes landed wrong";
    }
    auto counts = rig->caller->registrations(rig->caller_device.get());
    EXPECT_GE(counts.registered, 1u) << "the landing was never registered: the bytes did not come by RDMA WRITE";
}

TEST(PeerRdmaMount, WithoutAWorkingRdmaPathAMountFallsBackToTcpAndSaysSo) {
    auto rig = MakeRig({{"node-a", PeerGrant{kSecret, {{"c1", PeerRight::kWrite}}}}});
    ASSERT_NE(rig, nullptr);
    // No device on the way to that node.
    RdmaConnector none = [](const std::string&, uint16_t) -> absl::StatusOr<RcConnected> {
        return absl::UnavailableError("no RDMA device");
    };
    // A queue pair whose far end nobody serves: the hello finds no receive and fails.
    RdmaConnector deaf = [&rig](const std::string&, uint16_t) -> absl::StatusOr<RcConnected> {
        auto [mine, theirs] = rig->fabric.Connect(*rig->caller_device, *rig->node_device,
                                                  {.rnr_retry = 2, .rnr_delay = absl::Milliseconds(1)});
        static std::vector<std::unique_ptr<peer::verbs::QueuePair>> unserved;
        unserved.push_back(std::move(theirs));
        return RcConnected{rig->caller_device.get(), std::move(mine)};
    };
    for (RdmaConnector* c : {&none, &deaf}) {
        auto mount = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}}, "node-a", kSecret), *c);
        ASSERT_TRUE(mount.ok()) << mount.status();
        EXPECT_NE((*mount)->RenderMetrics().find("transport=\"tcp\""), std::string::npos) << (*mount)->RenderMetrics();
        SyncBackend b(mount->get());
        ASSERT_TRUE(b.Put("/c1/x", "over tcp").ok());
        EXPECT_EQ(b.Get("/c1/x").value_or(""), "over tcp");
    }
}

// A put's bytes made as they are read (a large object without holding it), of known size or
// not, failing after `fail_at` bytes if asked.
struct PatternSource : DataSource {
    static char At(uint64_t pos) { return static_cast<char>((pos * 131 + pos / 4096) % 251); }
    uint64_t total = 0, at = 0, fail_at = UINT64_MAX;
    bool known = true;
    absl::StatusOr<size_t> Read(char* buf, size_t cap) override {
        if (at >= fail_at) {
            return absl::DataLossError("the client's source broke");
        }
        size_t n = std::min<uint64_t>(cap, std::min(total, fail_at) - at);
        for (size_t i = 0; i < n; ++i) {
            buf[i] = At(at + i);
        }
        at += n;
        return n;
    }
    std::optional<uint64_t> size() const override { return known ? std::optional<uint64_t>(total) : std::nullopt; }
};

// Whether the object at `path` holds exactly the pattern, `total` bytes of it (read in 16 MiB
// ranges).
::testing::AssertionResult HoldsThePattern(Backend* b, const std::string& path, uint64_t total) {
    for (uint64_t off = 0; off < total; off += 16 << 20) {
        std::string got;
        StringSink sink(&got);
        auto r = Await<GetObjectResult>([&](auto done) {
            b->GetObject({.path = *Path::Parse(path), .offset = off, .length = 16 << 20}, &sink, std::move(done));
        });
        if (!r.ok()) {
            return ::testing::AssertionFailure() << "at " << off << ": " << r.status();
        }
        if (got.size() != std::min<uint64_t>(16 << 20, total - off)) {
            return ::testing::AssertionFailure() << "at " << off << ": " << got.size() << " bytes";
        }
        for (size_t i = 0; i < got.size(); ++i) {
            if (got[i] != PatternSource::At(off + i)) {
                return ::testing::AssertionFailure() << "byte " << off + i << " differs";
            }
        }
    }
    return ::testing::AssertionSuccess();
}

TEST(PeerStreamedPut, APutLargerThanAMessageStreamsInPartsAndReadsBackWhole) {
    auto rig = MakeRig({{"node-a", PeerGrant{kSecret, {{"c1", PeerRight::kWrite}}}}});
    ASSERT_NE(rig, nullptr);
    auto mount = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}}, "node-a", kSecret));
    ASSERT_TRUE(mount.ok()) << mount.status();
    // Larger than one peer message (256 MiB), size known.
    PatternSource big;
    big.total = (256 << 20) + (17 << 20) + 5;
    auto put = Await<ObjectInfo>([&](auto done) { (*mount)->PutObject({.path = *Path::Parse("/c1/big")}, &big, std::move(done)); });
    ASSERT_TRUE(put.ok()) << put.status();
    EXPECT_EQ(put->size, big.total);
    EXPECT_TRUE(HoldsThePattern(mount->get(), "/c1/big", big.total));
}

TEST(PeerStreamedPut, APutOfUnknownSizeStreamsOverRdmaToo) {
    auto rig = MakeRig({{"node-a", PeerGrant{kSecret, {{"c1", PeerRight::kWrite}}}}});
    ASSERT_NE(rig, nullptr);
    auto mount = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}}, "node-a", kSecret), SimRdma(rig.get()));
    ASSERT_TRUE(mount.ok()) << mount.status();
    PatternSource unknown;
    unknown.total = (20 << 20) + 3;
    unknown.known = false;
    auto put = Await<ObjectInfo>([&](auto done) { (*mount)->PutObject({.path = *Path::Parse("/c1/u")}, &unknown, std::move(done)); });
    ASSERT_TRUE(put.ok()) << put.status();
    EXPECT_EQ(put->size, unknown.total);
    EXPECT_TRUE(HoldsThePattern(mount->get(), "/c1/u", unknown.total));
}

TEST(PeerStreamedPut, AStreamThatBreaksOffAppliesNothing) {
    auto rig = MakeRig({{"node-a", PeerGrant{kSecret, {{"c1", PeerRight::kWrite}}}}});
    ASSERT_NE(rig, nullptr);
    auto mount = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}}, "node-a", kSecret));
    ASSERT_TRUE(mount.ok()) << mount.status();
    SyncBackend b(mount->get());
    ASSERT_TRUE(b.Put("/c1/x", "the old bytes").ok());
    PatternSource broken;
    broken.total = 40 << 20;
    broken.known = false;
    broken.fail_at = 19 << 20;  // in the third part
    auto put = Await<ObjectInfo>([&](auto done) { (*mount)->PutObject({.path = *Path::Parse("/c1/x")}, &broken, std::move(done)); });
    ASSERT_FALSE(put.ok());
    EXPECT_NE(put.status().message().find("nothing was applied"), std::string::npos) << put.status();
    EXPECT_EQ(b.Get("/c1/x").value_or("(gone)"), "the old bytes");
    // The node let the stream go: a put after it streams again.
    PatternSource next;
    next.total = 12 << 20;
    next.known = false;
    auto again = Await<ObjectInfo>([&](auto done) { (*mount)->PutObject({.path = *Path::Parse("/c1/x")}, &next, std::move(done)); });
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(HoldsThePattern(mount->get(), "/c1/x", next.total));
}

TEST(PeerStreamedPut, OnePeerKeyCannotTakeEveryStreamOfTheNode) {
    const std::string other_secret = "the-other-key-secret-0123456789";
    auto rig = MakeRig({{"node-a", PeerGrant{kSecret, {{"c1", PeerRight::kWrite}}}},
                        {"node-b", PeerGrant{other_secret, {{"c1", PeerRight::kWrite}}}}});
    ASSERT_NE(rig, nullptr);
    auto a = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}}, "node-a", kSecret));
    auto b = PeerBackend::Open(rig->caller.get(), Mount(*rig, {{"c1", "c1"}}, "node-b", other_secret));
    ASSERT_TRUE(a.ok() && b.ok());
    auto begin = [](PeerBackend* m, uint64_t token) {
        std::promise<absl::StatusOr<std::string>> p;
        m->Call(kPeerStreamBegin, false,
                std::string(reinterpret_cast<const char*>(&token), 8) +
                    protocol::Encode(PutObjectRequest{.path = *Path::Parse("/c1/s" + std::to_string(token))}),
                "", [&p](absl::StatusOr<std::string> r) { p.set_value(std::move(r)); });
        return p.get_future().get().status();
    };
    for (uint64_t t = 1; t <= 4; ++t) {
        ASSERT_TRUE(begin(a->get(), t).ok());
    }
    EXPECT_EQ(begin(a->get(), 5).code(), absl::StatusCode::kResourceExhausted) << "a fifth stream of one key";
    EXPECT_TRUE(begin(b->get(), 6).ok()) << "another key is still served";
    // (the streams are given up when the node closes, nothing applied)
}

INSTANTIATE_TEST_SUITE_P(Peer, BackendConformance,
                         ::testing::Values(BackendFactory{"peer_tcp", [] { return MakePeer(false); }},
                                           BackendFactory{"peer_rdma_sim", [] { return MakePeer(true); }}),
                         [](const ::testing::TestParamInfo<BackendFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace zerohop::testing
