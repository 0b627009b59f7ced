// The session wire: every message round-trips, and no byte string decodes into a crash.

#include <gtest/gtest.h>

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
    i.ctime = {1700000001, 999999999};
    i.last_sequence = 7;
    i.symlink_target = "../x";
    return i;
}

AttributeMap SampleAttrs() {
    return {{"i", Value::Int64(-1)}, {"s", Value::String("x")}, {"a", Value::DoubleArray({1.5})}};
}

// Encodes, decodes, re-encodes: the bytes must match, and every strict prefix must fail.
template <typename T>
void RoundTrip(const T& msg) {
    std::string bytes = Encode(msg);
    auto back = Decode<T>(bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(Encode(*back), bytes);
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
        std::string_view prefix(bytes.data(), cut);
        if constexpr (!std::is_same_v<T, WriteObjectRequest> && !std::is_same_v<T, AppendRequest>) {
            EXPECT_FALSE(Decode<T>(prefix).ok()) << "a " << cut << "-byte prefix decoded";
        } else {
            (void)Decode<T>(prefix);
        }
    }
    if constexpr (!std::is_same_v<T, WriteObjectRequest> && !std::is_same_v<T, AppendRequest>) {
        EXPECT_FALSE(Decode<T>(bytes + "x").ok()) << "trailing bytes accepted";
    }
}

TEST(Protocol, EveryMessageRoundTrips) {
    RoundTrip(Hello{.access_key = "key-123", .submit_entries = 512, .client_bytes = 1 << 26});
    RoundTrip(Welcome{.status = absl::PermissionDeniedError("bad key"), .session_id = 9, .max_in_flight = 128});
    RoundTrip(P("/c/a/b"));
    RoundTrip(std::string("target"));
    RoundTrip(std::vector<std::string>{"c1", "c2"});
    RoundTrip(SampleInfo());
    RoundTrip(ListRequest{.path = P("/c/d"), .prefix = "p", .marker = "m", .limit = 7, .with_attributes = true});
    RoundTrip(ListResult{.entries = {{"a", SampleInfo(), SampleAttrs()}, {"b", {}, {}}}, .next_marker = "b",
                         .truncated = true});
    RoundTrip(MkdirRequest{.path = P("/c/d"), .mode = 0700});
    RoundTrip(RenameRequest{.from = P("/c/a"), .to = P("/c/b"), .no_replace = true});
    RoundTrip(SymlinkRequest{.path = P("/c/l"), .target = "/c/t"});
    RoundTrip(DeleteRequest{.path = P("/c/x"), .condition = "v == 1"});
    RoundTrip(SetMetadataRequest{.path = P("/c/x"), .mode = 0600, .mtime = Timestamp{5, 6}});
    RoundTrip(GetObjectRequest{.path = P("/c/o"), .offset = 10, .length = 20});
    RoundTrip(GetObjectResult{.info = SampleInfo(), .bytes = 20});
    RoundTrip(PutObjectRequest{.path = P("/c/o"), .attributes = SampleAttrs(), .condition = "x", .mode = 0644});
    RoundTrip(TruncateRequest{.path = P("/c/o"), .size = 3});
    RoundTrip(GetItemRequest{.path = P("/c/t/i"), .attributes = {"a", "__size"}});
    RoundTrip(Item{"i", SampleInfo(), SampleAttrs()});
    RoundTrip(GetItemsRequest{.path = P("/c/t"), .filter = "a > 1", .attributes = {"*"}, .marker = "k",
                              .limit = 10, .segment = 1, .total_segments = 4});
    RoundTrip(GetItemsResult{.items = {{"i", SampleInfo(), SampleAttrs()}}, .next_marker = "i", .done = true});
    RoundTrip(PutItemRequest{.path = P("/c/t/i"), .attributes = SampleAttrs(), .condition = "NOT exists(a)"});
    RoundTrip(std::vector<PutItemRequest>{{.path = P("/c/t/i")}, {.path = P("/c/t/j"), .condition = "x"}});
    RoundTrip(std::vector<absl::Status>{absl::OkStatus(), absl::NotFoundError("gone")});
    RoundTrip(UpdateItemRequest{.path = P("/c/t/i"), .update = "a = 1", .condition = "b", .else_update = "c = 2"});
    RoundTrip(CreateStreamRequest{.path = P("/c/s"), .shard_count = 8, .retention_secs = 3600});
    RoundTrip(StreamDescription{.shard_count = 8, .retention_secs = 60});
    RoundTrip(PutRecordsRequest{.path = P("/c/s"),
                                .records = {{.data = "d", .shard = 3}, {.data = "e", .partition_key = "k"}}});
    RoundTrip(std::vector<RecordResult>{{absl::OkStatus(), 1, 5}, {absl::InvalidArgumentError("big"), 0, 0}});
    RoundTrip(SeekRequest{.path = P("/c/s"), .shard = 2, .type = SeekType::kTime, .time = {9, 8}});
    RoundTrip(StreamLocation{3, 17});
    RoundTrip(DaemonStatus{.workers = 2, .sessions_open = 3, .requests = 99, .containers = {"a", "b"}});
    RoundTrip(GetRecordsRequest{.path = P("/c/s"), .location = {1, 2}, .limit = 10, .max_bytes = 100});
    RoundTrip(GetRecordsResult{.records = {{.shard = 1, .sequence = 2, .arrival = {3, 4}, .data = "x"}},
                               .next = {1, 3},
                               .behind = 5});
}

TEST(Protocol, WriteAndAppendCarryTheirBytesAfterTheHeader) {
    std::string bytes = Encode(WriteObjectRequest{.path = P("/c/o"), .offset = 5, .data = "payload"});
    auto w = Decode<WriteObjectRequest>(bytes);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(w->offset, 5u);
    EXPECT_EQ(w->data, "payload");
    auto a = Decode<AppendRequest>(Encode(AppendRequest{.path = P("/c/o"), .data = std::string(100000, 'z')}));
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->data.size(), 100000u);
    std::string_view rest;
    std::string message = Encode(PutObjectRequest{.path = P("/c/o")}) + "object bytes";
    auto put = DecodePrefix<PutObjectRequest>(message, &rest);
    ASSERT_TRUE(put.ok());
    EXPECT_EQ(rest, "object bytes");
}

TEST(Protocol, HostileValuesAreRejected) {
    // An invalid path inside a well-formed message.
    std::string bad_path;
    ByteWriter w(&bad_path);
    w.PutBytes("/c/../x");
    EXPECT_FALSE(Decode<Path>(bad_path).ok());
    // An access key past the limit.
    EXPECT_FALSE(Decode<Hello>(Encode(Hello{.access_key = std::string(kMaxAccessKeyBytes + 1, 'k')})).ok());
    // Wrong magic.
    std::string hello = Encode(Hello{});
    hello[0] ^= 1;
    EXPECT_FALSE(Decode<Hello>(hello).ok());
    // A vector count far beyond the bytes present does not allocate it.
    std::string huge;
    ByteWriter h(&huge);
    h.PutVarint(uint64_t{1} << 60);
    EXPECT_FALSE(Decode<std::vector<std::string>>(huge).ok());
    // An unknown object type, seek type and status code.
    std::string info = Encode(SampleInfo());
    info[0] = 9;
    EXPECT_FALSE(Decode<ObjectInfo>(info).ok());
    std::string seek = Encode(SeekRequest{.path = P("/c/s")});
    seek[6] = 7;  // the seek type byte: after the path (1 + 4 bytes) and the shard (1 byte)
    EXPECT_FALSE(Decode<SeekRequest>(seek).ok());
    std::string status;
    ByteWriter s(&status);
    s.PutVarint(99);
    s.PutBytes("x");
    EXPECT_FALSE(Decode<WireStatus>(status).ok());
}

TEST(Protocol, OpsAreKnownAndNamed) {
    EXPECT_TRUE(IsKnownOp(static_cast<uint16_t>(Op::kGetItem)));
    EXPECT_TRUE(IsKnownOp(static_cast<uint16_t>(Op::kRelease)));
    EXPECT_TRUE(IsKnownOp(11));   // mknod
    EXPECT_FALSE(IsKnownOp(12));  // never given
    EXPECT_FALSE(IsKnownOp(0xffff));
    EXPECT_EQ(OpName(Op::kUpdateItem), "update_item");
}

}  // namespace
}  // namespace zerohop::protocol
