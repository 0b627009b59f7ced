// The request journal (fuse/request_journal.h): what a successor learns of the requests its
// predecessor began, applied and answered.

#include "request_journal.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

namespace zerohop::fuse {
namespace {

using Prior = RequestJournal::Prior;

// The journal a successor gets: the same memfd, adopted.
RequestJournal Successor(const RequestJournal& j) {
    auto adopted = RequestJournal::Adopt(shmring::UniqueFd(dup(j.fd())));
    EXPECT_TRUE(adopted.ok()) << adopted.status();
    return std::move(*adopted);
}

TEST(RequestJournalTest, ANewRequestHasNoPastAndItsRecordGoesWithItsAnswer) {
    auto j = RequestJournal::Create();
    ASSERT_TRUE(j.ok()) << j.status();
    EXPECT_EQ(j->Begin(42).prior, Prior::kNone);
    EXPECT_EQ(j->Live(), 1u);
    j->Applied(42, "x", 1);
    j->End(42);
    EXPECT_EQ(j->Live(), 0u);
    EXPECT_EQ(Successor(*j).Begin(42 | kUniqueResend).prior, Prior::kNone);
}

TEST(RequestJournalTest, ASuccessorSeesWhatWasAppliedWithItsPayloadAndWhatOnlyBegan) {
    auto j = RequestJournal::Create();
    ASSERT_TRUE(j.ok());
    j->Begin(10);
    j->Applied(10, "entry", 5);
    j->Begin(12);  // began, then the server died
    j->Begin(14);
    j->Applied(14, "gone", 4);
    j->End(14);  // answered
    RequestJournal next = Successor(*j);
    EXPECT_EQ(next.Live(), 2u);
    // Sent again with the resend bit; recorded under the number without it.
    RequestJournal::Begun applied = next.Begin(10 | kUniqueResend);
    EXPECT_EQ(applied.prior, Prior::kApplied);
    EXPECT_EQ(applied.payload, "entry");
    EXPECT_EQ(next.Begin(12 | kUniqueResend).prior, Prior::kBegun);
    EXPECT_EQ(next.Begin(14 | kUniqueResend).prior, Prior::kNone);
    // Answered by the successor at last: the records go (the answer carries the bit).
    next.End(10 | kUniqueResend);
    next.End(12 | kUniqueResend);
    next.End(14 | kUniqueResend);
    EXPECT_EQ(next.Live(), 0u);
}

TEST(RequestJournalTest, RecordsOutliveAFewTakeoversThenGo) {
    auto first = RequestJournal::Create();
    ASSERT_TRUE(first.ok());
    first->Begin(7);  // answered, but the server died before it could end the record
    RequestJournal j = Successor(*first);
    for (int takeover = 0; takeover < 3; ++takeover) {
        j = Successor(j);
    }
    EXPECT_EQ(j.Live(), 1u) << "a request sent again after several quick kills is still known";
    for (int takeover = 0; takeover < 3; ++takeover) {
        j = Successor(j);
    }
    EXPECT_EQ(j.Live(), 0u) << "kept forever, stale records would fill the table";
}

TEST(RequestJournalTest, ATableTooFullForARequestSaysItIsUntracked) {
    auto j = RequestJournal::Create();
    ASSERT_TRUE(j.ok());
    int untracked = 0;
    for (uint64_t unique = 2; unique < 2 + 4096 * 2; unique += 2) {
        untracked += j->Begin(unique).prior == Prior::kUntracked;
    }
    EXPECT_GT(untracked, 0);
    EXPECT_LE(j->Live(), 1024u);
    j->Applied(1ull << 40, "x", 1);  // never begun: nothing to record, nothing breaks
    j->End(1ull << 40);
}

TEST(RequestJournalTest, ADescriptorThatIsNotAJournalIsRefused) {
    int fd = memfd_create("not-a-journal", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 4096), 0);
    auto adopted = RequestJournal::Adopt(shmring::UniqueFd(fd));
    EXPECT_TRUE(absl::IsDataLoss(adopted.status())) << adopted.status();
}

}  // namespace
}  // namespace zerohop::fuse
