// The session wire's bytes never change by accident: every message type encodes to the
// bytes recorded here (by the protocol as it was when this test was written), and decodes
// from them. A deliberate change of the wire bumps kProtocolVersion and these goldens.
//
// ZH_PRINT_GOLDENS=1 prints the current encodings in this file's format.

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "absl/strings/escaping.h"
#include "wire/protocol.h"

namespace zerohop::protocol {
namespace {

Path P(std::string_view s) { return *Path::Parse(s); }

ObjectInfo SampleInfo() {
    ObjectInfo i;
    i.type = ObjectType::kSymlink;
    i.id = 42;
    i.size = 1 << 20;
    i.mode = 0640;
    i.uid = 1000;
    i.gid = 100;
    i.mtime = {1700000000, 5};
    i.ctime = {-3, 999999999};
    i.last_sequence = 7;
    i.symlink_target = "../x";
    i.subdirs = 3;
    i.atime = {-1, 3};
    return i;
}

AttributeMap SampleAttrs() { return {{"i", Value::Int64(-1)}}; }

struct Golden {
    std::string name;
    std::string bytes;  // the encoding now
    std::string hex;    // the encoding recorded
    bool decodes;       // the recorded bytes decode and re-encode to themselves
};

template <typename T>
Golden Check(std::string name, const T& msg, std::string hex) {
    std::string bytes = Encode(msg);
    std::string recorded = absl::HexStringToBytes(hex);
    auto back = Decode<T>(recorded);
    return {std::move(name), bytes, std::move(hex), back.ok() && Encode(*back) == recorded};
}

TEST(WireGolden, EveryMessageEncodesToItsRecordedBytes) {
    std::vector<Golden> all = {
        Check("Hello", Hello{.access_key = "key-123", .submit_entries = 512, .client_bytes = 1 << 26},
              "4c48485a03076b65792d313233800480028080802080808010"),
        Check("Welcome", Welcome{.status = absl::PermissionDeniedError("bad key"), .session_id = 9,
                                 .max_in_flight = 128},
              "0707626164206b657903098001"),
        Check("WireStatus", WireStatus{absl::NotFoundError("gone")}, "0504676f6e65"),
        Check("DaemonStatus",
              DaemonStatus{.version = 1, .workers = 2, .sessions_open = 3, .sessions_total = 4, .sessions_refused = 5,
                           .requests = 99, .request_errors = 6, .bad_descriptors = 7, .containers = {"a", "b"}},
              "01020304056306070201610162"),
        Check("DaemonInfo", DaemonInfo{.version = "0.1.0", .socket = "/s", .metrics = "127.0.0.1:9464"},
              "05302e312e30022f730e3132372e302e302e313a39343634"),
        Check("PublishVolumeRequest",
              PublishVolumeRequest{.scope_id = "v1", .root = P("/c/d"), .read_only = true, .access_key = "k",
                                   .pod_namespace = "ns", .pod_name = "p", .pod_uid = "u", .service_account = "sa"},
              "027631042f632f6401016b026e7301700175027361"),
        Check("PublishedVolume", PublishedVolume{.directory = "/r/v", .socket = "/r/v/s"}, "042f722f76062f722f762f73"),
        Check("UnpublishVolumeRequest", UnpublishVolumeRequest{.scope_id = "v1"}, "027631"),
        Check("Path", P("/c/a/b"), "062f632f612f62"),
        Check("string", std::string("target"), "06746172676574"),
        Check("strings", std::vector<std::string>{"c1", "c2"}, "02026331026332"),
        Check("ObjectInfo", SampleInfo(),
              "032a808040a003e8076400f153650000000005000000fdffffffffffffffffc99a3b07042e2e2f78000003ffffffffffffffff03000000"),
        Check("ListRequest",
              ListRequest{.path = P("/c/d"), .prefix = "p", .marker = "m", .limit = 7, .with_attributes = true},
              "042f632f640170016d0701"),
        Check("ListResult",
              ListResult{.entries = {{"a", SampleInfo(), SampleAttrs()}}, .next_marker = "a", .truncated = true},
              "010161032a808040a003e8076400f153650000000005000000fdffffffffffffffffc99a3b07042e2e2f78000003ffffffffffffffff030000000c01016902ffffffffffffffff016101"),
        Check("MkdirRequest", MkdirRequest{.path = P("/c/d"), .mode = 0700, .caller = {1000, 100}}, "042f632f64c003e80764"),
        Check("RenameRequest", RenameRequest{.from = P("/c/a"), .to = P("/c/b"), .no_replace = true},
              "042f632f61042f632f6201"),
        Check("SymlinkRequest", SymlinkRequest{.path = P("/c/l"), .target = "/c/t", .caller = {1000, 100}}, "042f632f6c042f632f74e80764"),
        Check("MknodRequest",
              MknodRequest{.path = P("/c/p"), .special = 0010000, .mode = 0640, .rdev = 0x10300, .caller = {1000, 100}},
              "042f632f708020a003808604e80764"),
        Check("DeleteRequest", DeleteRequest{.path = P("/c/x"), .condition = "v == 1"}, "042f632f780676203d3d2031"),
        Check("SetMetadataRequest",
              SetMetadataRequest{.path = P("/c/x"), .mode = 0600, .gid = 7, .mtime = Timestamp{5, 6}, .atime = Timestamp{7, 8}}, "042f632f780180030001070105000000000000000600000001070000000000000008000000"),
        Check("GetObjectRequest", GetObjectRequest{.path = P("/c/o"), .offset = 10, .length = 20}, "042f632f6f0a14"),
        Check("GetObjectResult", GetObjectResult{.info = SampleInfo(), .bytes = 20}, "032a808040a003e8076400f153650000000005000000fdffffffffffffffffc99a3b07042e2e2f78000003ffffffffffffffff0300000014"),
        Check("ObjectFileAnswer", ObjectFileAnswer{.info = SampleInfo(), .file_tag = 20},
              "032a808040a003e8076400f153650000000005000000fdffffffffffffffffc99a3b07042e2e2f78000003ffffffffffffffff0300000014"),
        Check("PutObjectRequest",
              PutObjectRequest{.path = P("/c/o"), .attributes = SampleAttrs(), .condition = "x", .mode = 0644, .caller = {1000, 100}}, "042f632f6f0c01016902ffffffffffffffff017801a403e80764"),
        Check("WriteObjectRequest", WriteObjectRequest{.path = P("/c/o"), .offset = 5, .data = "payload"}, "042f632f6f057061796c6f6164"),
        Check("AppendRequest", AppendRequest{.path = P("/c/o"), .data = "more"}, "042f632f6f6d6f7265"),
        Check("TruncateRequest", TruncateRequest{.path = P("/c/o"), .size = 3}, "042f632f6f03"),
        Check("GetItemRequest", GetItemRequest{.path = P("/c/t/i"), .attributes = {"a", "__size"}}, "062f632f742f69020161065f5f73697a65"),
        Check("Item", Item{"i", SampleInfo(), SampleAttrs()}, "0169032a808040a003e8076400f153650000000005000000fdffffffffffffffffc99a3b07042e2e2f78000003ffffffffffffffff030000000c01016902ffffffffffffffff"),
        Check("GetItemsRequest",
              GetItemsRequest{.path = P("/c/t"), .filter = "a > 1", .attributes = {"*"}, .marker = "k", .limit = 10,
                              .segment = 1, .total_segments = 4},
              "042f632f740561203e203101012a016b0a0104"),
        Check("GetItemsResult",
              GetItemsResult{.items = {{"i", SampleInfo(), SampleAttrs()}}, .next_marker = "i", .done = true}, "010169032a808040a003e8076400f153650000000005000000fdffffffffffffffffc99a3b07042e2e2f78000003ffffffffffffffff030000000c01016902ffffffffffffffff016901"),
        Check("PutItemRequest",
              PutItemRequest{.path = P("/c/t/i"), .attributes = SampleAttrs(), .condition = "NOT exists(a)", .caller = {1000, 100}}, "062f632f742f690c01016902ffffffffffffffff0d4e4f5420657869737473286129e80764"),
        Check("PutItemRequests",
              std::vector<PutItemRequest>{{.path = P("/c/t/i")}, {.path = P("/c/t/j"), .condition = "x"}}, "02062f632f742f690100000000062f632f742f6a010001780000"),
        Check("Statuses", std::vector<absl::Status>{absl::OkStatus(), absl::NotFoundError("gone")}, "0200000504676f6e65"),
        Check("UpdateItemRequest",
              UpdateItemRequest{.path = P("/c/t/i"), .update = "a = 1", .condition = "b", .else_update = "c = 2", .caller = {1000, 100}},
              "062f632f742f690561203d203101620563203d2032e80764"),
        Check("CreateStreamRequest", CreateStreamRequest{.path = P("/c/s"), .shard_count = 8, .retention_secs = -3600, .caller = {1000, 100}},
              "042f632f7308f0f1ffffffffffffe80764"),
        Check("StreamDescription", StreamDescription{.shard_count = 8, .retention_secs = 60}, "083c00000000000000"),
        Check("PutRecordsRequest",
              PutRecordsRequest{.path = P("/c/s"),
                                .records = {{.data = "d", .shard = 3}, {.data = "e", .partition_key = "k",
                                                                        .client_info = "ci"}}},
              "042f632f7302016401030000016500016b026369"),
        Check("RecordResults",
              std::vector<RecordResult>{{absl::OkStatus(), 1, 5}, {absl::InvalidArgumentError("big"), 0, 0}}, "020000010503036269670000"),
        Check("SeekRequest",
              SeekRequest{.path = P("/c/s"), .shard = 2, .type = SeekType::kTime, .sequence = 4, .time = {9, 8}}, "042f632f73020304090000000000000008000000"),
        Check("StreamLocation", StreamLocation{3, 17}, "0311"),
        Check("GetRecordsRequest",
              GetRecordsRequest{.path = P("/c/s"), .location = {1, 2}, .limit = 10, .max_bytes = 100}, "042f632f7301020a64"),
        Check("GetRecordsResult",
              GetRecordsResult{.records = {{.shard = 1, .sequence = 2, .arrival = {3, 4}, .data = "x",
                                            .partition_key = "pk", .client_info = "ci"}},
                               .next = {1, 3},
                               .behind = 5},
              "010102030000000000000004000000017802706b026369010305"),
    };
    if (const char* print = std::getenv("ZH_PRINT_GOLDENS"); print != nullptr && *print == '1') {
        for (const Golden& g : all) {
            std::cout << g.name << " \"" << absl::BytesToHexString(g.bytes) << "\"\n";
        }
    }
    for (const Golden& g : all) {
        EXPECT_EQ(absl::BytesToHexString(g.bytes), g.hex) << g.name << ": the encoding changed";
        EXPECT_TRUE(g.decodes) << g.name << ": the recorded bytes no longer decode to themselves";
    }
}

}  // namespace
}  // namespace zerohop::protocol
