// The rules every backend applies alike (backend/rules.h): what each operation accepts, and
// how a refusal reads. The conformance suite checks that each backend applies them.

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "backend/rules.h"
#include "zerohop/status.h"

namespace zerohop {
namespace {

Path P(std::string_view s) { return *Path::Parse(s); }

ObjectInfo Of(ObjectType t) {
    ObjectInfo i;
    i.type = t;
    return i;
}

TEST(Rules, RenameReplacesFilesWithFilesAndDirectoriesWithDirectoriesOnly) {
    RenameRequest req{.from = P("/c/a"), .to = P("/c/b")};
    using T = ObjectType;
    struct Case {
        T from, to;
        bool ok;
    };
    for (const Case& c : std::vector<Case>{{T::kObject, T::kObject, true},
                                           {T::kSymlink, T::kObject, true},
                                           {T::kObject, T::kSymlink, true},
                                           {T::kDirectory, T::kDirectory, true},
                                           {T::kDirectory, T::kObject, false},
                                           {T::kObject, T::kDirectory, false},
                                           {T::kStream, T::kDirectory, false},
                                           {T::kDirectory, T::kStream, false},
                                           {T::kObject, T::kStream, false}}) {
        absl::Status s = CheckReplace(req, Of(c.from), Of(c.to));
        EXPECT_EQ(s.ok(), c.ok) << ObjectTypeName(c.from) << " onto " << ObjectTypeName(c.to) << ": " << s;
        if (!s.ok()) {
            EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
        }
    }
    req.no_replace = true;
    EXPECT_TRUE(absl::IsAlreadyExists(CheckReplace(req, Of(T::kObject), Of(T::kObject))));
    EXPECT_TRUE(absl::IsFailedPrecondition(CheckMovable(req, Of(T::kShard))));
    EXPECT_TRUE(absl::IsInvalidArgument(CheckRenamePaths({.from = P("/c/a"), .to = P("/c/a/b")})));
    EXPECT_TRUE(absl::IsFailedPrecondition(CheckRenamePaths({.from = P("/c"), .to = P("/d")})));
}

TEST(Rules, EachOperationTakesItsOwnKindOfEntry) {
    using T = ObjectType;
    EXPECT_TRUE(CheckDeletable(P("/c/o"), T::kObject).ok());
    EXPECT_TRUE(CheckDeletable(P("/c/l"), T::kSymlink).ok());
    EXPECT_TRUE(CheckDeletable(P("/c/p"), T::kSpecial).ok());
    EXPECT_TRUE(CheckMknod({.path = P("/c/p"), .special = S_IFIFO}).ok());
    EXPECT_TRUE(CheckMknod({.path = P("/c/p"), .special = S_IFBLK, .rdev = 0x803}).ok());
    EXPECT_TRUE(absl::IsInvalidArgument(CheckMknod({.path = P("/c/p"), .special = S_IFREG})));
    EXPECT_TRUE(absl::IsInvalidArgument(CheckMknod({.path = P("/c/p"), .special = S_IFSOCK, .rdev = 1})));
    EXPECT_TRUE(absl::IsInvalidArgument(CheckMknod({.path = P("/c/p"), .special = S_IFIFO, .mode = 010644})));
    EXPECT_FALSE(CheckReadable(P("/c/p"), Of(T::kSpecial)).ok());
    EXPECT_EQ(StatusToErrno(CheckDeletable(P("/c/d"), T::kDirectory)), EISDIR);
    EXPECT_FALSE(CheckDeletable(P("/c/s"), T::kStream).ok());
    EXPECT_FALSE(CheckDeletable(P("/c/s/0"), T::kShard).ok());
    EXPECT_TRUE(CheckRemovableDirectory(P("/c/d"), T::kDirectory).ok());
    EXPECT_EQ(StatusToErrno(CheckRemovableDirectory(P("/c/o"), T::kObject)), ENOTDIR);
    EXPECT_FALSE(CheckRemovableDirectory(P("/c/s"), T::kStream).ok());
    EXPECT_EQ(StatusToErrno(DirectoryNotEmptyError(P("/c/d"))), ENOTEMPTY);
    EXPECT_TRUE(CheckReadable(P("/c/o"), Of(T::kObject)).ok());
    ObjectInfo link = Of(T::kSymlink);
    link.symlink_target = "/c/o";
    EXPECT_NE(CheckReadable(P("/c/l"), link).message().find("read it with readlink"), std::string::npos);
    EXPECT_EQ(*SymlinkTargetOf(P("/c/l"), link), "/c/o");
    EXPECT_FALSE(SymlinkTargetOf(P("/c/o"), Of(T::kObject)).ok());
    EXPECT_FALSE(CheckWritable(P("/c/d"), Of(T::kDirectory)).ok());
    EXPECT_FALSE(CheckObjectReplaces(P("/c/d"), &link).ok());
    EXPECT_TRUE(CheckObjectReplaces(P("/c/n"), nullptr).ok());
    EXPECT_FALSE(CheckBelowContainer(P("/c")).ok());
    EXPECT_TRUE(CheckBelowContainer(P("/c/x")).ok());
    EXPECT_FALSE(CheckWritableParent(P("/c/s/9"), T::kStream).ok());
}

TEST(Rules, SizesAndLimitsAreTheContractsOwn) {
    EXPECT_TRUE(CheckWriteRange(P("/c/o"), kMaxObjectBytes - 1, 1).ok());
    EXPECT_FALSE(CheckWriteRange(P("/c/o"), kMaxObjectBytes, 1).ok());
    EXPECT_FALSE(CheckWriteRange(P("/c/o"), 1, UINT64_MAX).ok()) << "no overflow";
    EXPECT_FALSE(CheckObjectSize(P("/c/o"), kMaxObjectBytes + 1).ok());
    EXPECT_FALSE(CheckTruncate({.path = P("/c/o"), .size = kMaxObjectBytes + 1}).ok());
    EXPECT_EQ(PageLimit(0), 1u);
    EXPECT_EQ(PageLimit(kMaxListLimit + 1), kMaxListLimit);
    EXPECT_FALSE(CheckSymlinkTarget({.path = P("/c/l"), .target = ""}).ok());
    EXPECT_FALSE(CheckSymlinkTarget({.path = P("/c/l"), .target = std::string("a\0b", 3)}).ok());
    EXPECT_FALSE(CheckPut({.path = P("/c")}).ok()) << "a container is not an object";
    EXPECT_FALSE(CheckPut({.path = P("/c/o"), .attributes = {{"__size", Value::Int64(1)}}}).ok());
}

TEST(Rules, AScanIsPlannedOnceAndKeepsObjectsThatMatch) {
    EXPECT_FALSE(PlanScan({.path = P("/c/t"), .segment = 2, .total_segments = 2}).ok());
    EXPECT_FALSE(PlanScan({.path = P("/c/t"), .filter = "a >"}).ok());
    EXPECT_FALSE(PlanScan({.path = Path()}).ok());
    auto scan = PlanScan({.path = P("/c/t"), .filter = "age > 30", .limit = 0});
    ASSERT_TRUE(scan.ok()) << scan.status();
    EXPECT_EQ(scan->limit, 1u);
    std::string old, young;
    EncodeAttributes({{"age", Value::Int64(40)}, {"name", Value::String("x")}}, &old);
    EncodeAttributes({{"age", Value::Int64(20)}}, &young);
    auto kept = ScanMatch(*scan, {"name"}, "alice", old, Of(ObjectType::kObject));
    ASSERT_TRUE(kept.ok() && kept->has_value());
    EXPECT_EQ((*kept)->attributes.size(), 1u) << "projected to name";
    EXPECT_FALSE(ScanMatch(*scan, {}, "bob", young, Of(ObjectType::kObject))->has_value());
    EXPECT_FALSE(ScanMatch(*scan, {}, "dir", old, Of(ObjectType::kDirectory))->has_value());
    EXPECT_FALSE(ScanMatch(*scan, {}, "bad", "garbage", Of(ObjectType::kObject)).ok());
    // Segments split a table between them: every name is in exactly one.
    std::vector<Scan> segments;
    for (uint32_t i = 0; i < 3; ++i) {
        segments.push_back(*PlanScan({.path = P("/c/t"), .segment = i, .total_segments = 3}));
    }
    for (std::string name : {"a", "b", "item-17", "zz"}) {
        int in = 0;
        for (const Scan& s : segments) {
            in += s.InSegment(name);
        }
        EXPECT_EQ(in, 1) << name;
    }
}

TEST(Rules, SeekLandsWhereEachTypeSays) {
    auto never = []() -> absl::StatusOr<uint64_t> { return absl::InternalError("not asked"); };
    auto seek = [&](SeekType type, uint64_t sequence = 0) {
        return SeekIn({.path = P("/c/s"), .shard = 1, .type = type, .sequence = sequence}, /*first=*/5, /*last=*/9,
                      never);
    };
    EXPECT_EQ(seek(SeekType::kEarliest)->sequence, 5u);
    EXPECT_EQ(seek(SeekType::kLatest)->sequence, 10u);
    EXPECT_EQ(seek(SeekType::kSequence, 7)->sequence, 7u);
    EXPECT_EQ(seek(SeekType::kSequence, 2)->sequence, 5u) << "expired: the first retained";
    EXPECT_EQ(seek(SeekType::kSequence, 10)->sequence, 10u) << "the next one to be written";
    EXPECT_FALSE(seek(SeekType::kSequence, 11).ok());
    EXPECT_FALSE(seek(SeekType::kSequence, 0).ok());
    EXPECT_EQ(seek(SeekType::kEarliest)->shard, 1u);
    auto by_time = SeekIn({.path = P("/c/s"), .type = SeekType::kTime}, 5, 9,
                          []() -> absl::StatusOr<uint64_t> { return 8; });
    EXPECT_EQ(by_time->sequence, 8u);
    EXPECT_FALSE(CheckShard(3, 3).ok());
    EXPECT_TRUE(CheckShard(2, 3).ok());
}

}  // namespace
}  // namespace zerohop
