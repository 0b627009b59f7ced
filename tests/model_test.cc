// The data model: paths, values, their encoding, stream locations, the errno map.

#include <errno.h>

#include <limits>

#include <gtest/gtest.h>

#include "zerohop/object.h"
#include "zerohop/path.h"
#include "zerohop/status.h"
#include "zerohop/stream.h"
#include "zerohop/value.h"

namespace zerohop {
namespace {

TEST(Path, ParsesContainerKeyAndName) {
    auto p = Path::Parse("/users/tables/people/alice");
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->container(), "users");
    EXPECT_EQ(p->key(), "tables/people/alice");
    EXPECT_EQ(p->name(), "alice");
    EXPECT_EQ(p->depth(), 4u);
    EXPECT_EQ(p->Parent().str(), "/users/tables/people");
    EXPECT_EQ(p->Parent().Parent().Parent().str(), "/users");
    EXPECT_TRUE(p->Parent().Parent().Parent().is_container_root());
    EXPECT_TRUE(p->Parent().Parent().Parent().Parent().is_root());
}

TEST(Path, RootAndTrailingSlash) {
    auto root = Path::Parse("/");
    ASSERT_TRUE(root.ok());
    EXPECT_TRUE(root->is_root());
    EXPECT_EQ(root->container(), "");
    auto dir = Path::Parse("/c/dir/");
    ASSERT_TRUE(dir.ok());
    EXPECT_EQ(dir->str(), "/c/dir");
}

TEST(Path, RejectsMalformedPathsWithPosition) {
    for (std::string_view bad : {"", "relative", "/c//x", "/c/./x", "/c/../x", "/..", "//"}) {
        auto p = Path::Parse(bad);
        EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    }
    std::string nul("/c/a\0b", 6);
    auto p = Path::Parse(nul);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.status().message().find("byte 4"), std::string::npos) << p.status();
}

TEST(Path, EnforcesComponentAndTotalLimits) {
    EXPECT_TRUE(Path::Parse("/c/" + std::string(255, 'x')).ok());
    EXPECT_FALSE(Path::Parse("/c/" + std::string(256, 'x')).ok());
    std::string longest = "/c";
    while (longest.size() + 256 <= kMaxPathBytes) {
        longest += "/" + std::string(255, 'y');
    }
    longest += "/" + std::string(kMaxPathBytes - longest.size() - 1, 'z');
    ASSERT_EQ(longest.size(), kMaxPathBytes);
    ASSERT_GT(longest.size(), 4096u);  // deeper than PATH_MAX
    EXPECT_TRUE(Path::Parse(longest).ok());
    EXPECT_FALSE(Path::Parse(longest + "z").ok());
}

TEST(Path, ChildAndContains) {
    auto dir = Path::Parse("/c/dir");
    ASSERT_TRUE(dir.ok());
    auto child = dir->Child("f");
    ASSERT_TRUE(child.ok());
    EXPECT_EQ(child->str(), "/c/dir/f");
    EXPECT_EQ(child->depth(), 3u);
    EXPECT_TRUE(dir->Contains(*child));
    EXPECT_TRUE(dir->Contains(*dir));
    EXPECT_FALSE(child->Contains(*dir));
    EXPECT_FALSE(dir->Contains(*Path::Parse("/c/dirx")));
    EXPECT_FALSE(dir->Child("..").ok());
    EXPECT_FALSE(dir->Child("a/b").ok());
    EXPECT_EQ(Path().Child("c")->str(), "/c");
}

AttributeMap SampleAttributes() {
    AttributeMap m;
    m["b"] = Value::Bool(true);
    m["i"] = Value::Int64(-42);
    m["d"] = Value::Double(2.5);
    m["s"] = Value::String("hello");
    m["blob"] = Value::Blob(std::string("\0\1\2", 3));
    m["t"] = Value::Time(Timestamp{1700000000, 123});
    m["ia"] = Value::Int64Array({1, 2, 3});
    m["da"] = Value::DoubleArray({0.5, -1});
    m["empty"] = Value::Int64Array({});
    return m;
}

TEST(Value, EncodingRoundTripsEveryType) {
    AttributeMap m = SampleAttributes();
    std::string bytes;
    EncodeAttributes(m, &bytes);
    auto back = DecodeAttributes(bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, m);
    EncodedAttributes enc(bytes);
    ASSERT_TRUE(enc.Validate().ok());
    EXPECT_EQ(enc.count(), m.size());
    auto ia = enc.Find("ia");
    ASSERT_TRUE(ia.has_value());
    EXPECT_EQ(ia->type(), ValueType::kInt64Array);
    EXPECT_EQ(ia->array_size(), 3u);
    EXPECT_EQ(ia->Int64At(2), 3);
    EXPECT_FALSE(enc.Find("missing").has_value());
}

TEST(Value, CorruptEncodingIsDataLossNeverACrash) {
    AttributeMap m = SampleAttributes();
    std::string bytes;
    EncodeAttributes(m, &bytes);
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
        auto r = DecodeAttributes(std::string_view(bytes).substr(0, cut));
        EXPECT_FALSE(r.ok()) << cut;
    }
    std::string flipped = bytes;
    for (size_t i = 0; i < flipped.size(); ++i) {
        flipped[i] ^= 0x5a;
        (void)DecodeAttributes(flipped);  // must not crash; either outcome is fine
        flipped[i] ^= 0x5a;
    }
    auto huge = DecodeAttributes(std::string("\xff\xff\xff\xff\x0f", 5));
    EXPECT_EQ(huge.status().code(), absl::StatusCode::kDataLoss);
}

TEST(Value, AttributeNamesAreValidated) {
    EXPECT_TRUE(ValidateAttributeName("a").ok());
    EXPECT_TRUE(ValidateAttributeName(std::string(255, 'a')).ok());
    EXPECT_FALSE(ValidateAttributeName("").ok());
    EXPECT_FALSE(ValidateAttributeName(std::string(256, 'a')).ok());
    EXPECT_FALSE(ValidateAttributeName("__size").ok());
    EXPECT_FALSE(ValidateAttributeName(std::string("a\0b", 3)).ok());
}

TEST(Value, ViewsCompareByTypeAndContent) {
    EXPECT_EQ(Value::String("x").view(), ValueView::String("x"));
    EXPECT_FALSE(Value::String("x").view() == ValueView::Blob("x"));
    EXPECT_EQ(Value::Int64Array({1, 2}).view(), Value::Int64Array({1, 2}).view());
    EXPECT_EQ(Value::Int64Array({1, 2, 3}).view().ArraySlice(1, 9).ToValue(), Value::Int64Array({2, 3}));
    EXPECT_EQ(Value::String("it's").DebugString(), "'it\\'s'");
}

TEST(Timestamp, NanosRoundTripIncludingNegative) {
    for (int64_t ns : {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{1'700'000'000'123'456'789}, int64_t{-1'500'000'000}}) {
        EXPECT_EQ(Timestamp::FromNanos(ns).ToNanos(), ns);
        EXPECT_GE(Timestamp::FromNanos(ns).nsecs, 0);
    }
}

TEST(Timestamp, NanosSaturateInsteadOfOverflowing) {
    EXPECT_EQ((Timestamp{std::numeric_limits<int64_t>::max(), 0}).ToNanos(), std::numeric_limits<int64_t>::max());
    EXPECT_EQ((Timestamp{std::numeric_limits<int64_t>::min() / 1'000'000'000 - 1, 0}).ToNanos(),
              std::numeric_limits<int64_t>::min());
    EXPECT_FALSE((Timestamp{std::numeric_limits<int64_t>::max(), 0}).InNanosRange());
    EXPECT_TRUE((Timestamp{1700000000, 5}).InNanosRange());
}

TEST(SystemAttributes, ExposeObjectInfo) {
    ObjectInfo info;
    info.type = ObjectType::kShard;
    info.size = 7;
    info.mode = 0640;
    info.mtime = Timestamp{10, 20};
    info.last_sequence = 99;
    EXPECT_EQ(SystemAttribute("__name", "x", info)->as_bytes(), "x");
    EXPECT_EQ(SystemAttribute("__size", "x", info)->as_int64(), 7);
    EXPECT_EQ(SystemAttribute("__mode", "x", info)->as_int64(), 0640);
    EXPECT_EQ(SystemAttribute("__mtime_nsecs", "x", info)->as_int64(), 20);
    EXPECT_EQ(SystemAttribute("__obj_type", "x", info)->as_int64(), 4);
    EXPECT_EQ(SystemAttribute("__last_sequence_num", "x", info)->as_int64(), 99);
    EXPECT_FALSE(SystemAttribute("__nope", "x", info).has_value());
    EXPECT_FALSE(SystemAttribute("size", "x", info).has_value());
    info.type = ObjectType::kObject;
    EXPECT_FALSE(SystemAttribute("__last_sequence_num", "x", info).has_value());
}

TEST(StreamLocation, EncodesAndRejectsGarbage) {
    StreamLocation loc{3, 17};
    auto back = StreamLocation::Decode(loc.Encode());
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, loc);
    for (std::string_view bad : {"", "3", "3:", ":4", "x:1", "3:0", "99999:1", "1:2:3"}) {
        EXPECT_EQ(StreamLocation::Decode(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
    }
}

TEST(StreamPlacement, PartitionKeyHashIsStable) {
    EXPECT_EQ(ShardForPartitionKey("user-1", 8), ShardForPartitionKey("user-1", 8));
    EXPECT_LT(ShardForPartitionKey("anything", 5), 5u);
    // Pinned: records already placed must keep their shard across versions.
    EXPECT_EQ(ShardForPartitionKey("abc", 1000), 0xe16801510db89efdull % 1000);
}

TEST(ErrorModel, MapsEveryCodeToAnErrno) {
    EXPECT_EQ(StatusToErrno(absl::OkStatus()), 0);
    EXPECT_EQ(StatusToErrno(absl::NotFoundError("x")), ENOENT);
    EXPECT_EQ(StatusToErrno(absl::AlreadyExistsError("x")), EEXIST);
    EXPECT_EQ(StatusToErrno(absl::PermissionDeniedError("x")), EACCES);
    EXPECT_EQ(StatusToErrno(absl::ResourceExhaustedError("x")), ENOSPC);
    EXPECT_EQ(StatusToErrno(absl::InvalidArgumentError("x")), EINVAL);
    EXPECT_EQ(StatusToErrno(absl::UnimplementedError("x")), ENOSYS);
    EXPECT_EQ(ConditionFailedError("/c/x").code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace zerohop
