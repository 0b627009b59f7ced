// The peer wire's frames and credits (rdma/frame.h): every field kept, every broken rule
// refused by name, any cut of the stream read alike, and flow control that a peer cannot
// cheat.

#include "rdma/frame.h"

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace zerohop::peer {
namespace {

FrameHeader Request(uint64_t id, uint32_t credits = 0) {
    return FrameHeader{.kind = FrameKind::kRequest, .request_id = id, .deadline_ns = 1'800'000'000'123'456'789ull,
                       .credits = credits};
}

TEST(PeerFrame, ARoundTripKeepsEveryField) {
    FrameHeader h{.kind = FrameKind::kResponse,
                  .request_id = 0x0102030405060708ull,
                  .deadline_ns = 1'900'000'000'000'000'001ull,
                  .credits = 77,
                  .flags = kFrameMore | kFrameError};
    std::string wire = EncodeFrame(h, "body bytes");
    ASSERT_EQ(wire.size(), kFrameHeaderSize + 10);
    auto got = DecodeHeader(wire, 1024);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->kind, FrameKind::kResponse);
    EXPECT_EQ(got->length, 10u);
    EXPECT_EQ(got->request_id, h.request_id);
    EXPECT_EQ(got->deadline_ns, h.deadline_ns);
    EXPECT_EQ(got->credits, 77u);
    EXPECT_EQ(got->flags, kFrameMore | kFrameError);
}

TEST(PeerFrame, EveryBrokenRuleIsRefusedNamingIt) {
    auto refused = [](std::string wire, uint32_t max_body = 1024) {
        auto h = DecodeHeader(wire, max_body);
        return h.ok() ? std::string("accepted") : std::string(h.status().message());
    };
    std::string good = EncodeFrame(Request(1), "x");
    ASSERT_EQ(refused(good), "accepted");
    auto with = [&](size_t offset, std::string bytes) {
        std::string w = good;
        w.replace(offset, bytes.size(), bytes);
        return w;
    };
    EXPECT_NE(refused(good.substr(0, 31)).find("32 bytes"), std::string::npos);
    EXPECT_NE(refused(with(0, "GE")).find("magic"), std::string::npos);
    EXPECT_NE(refused(with(2, "\x02")).find("version 2"), std::string::npos);
    EXPECT_NE(refused(with(3, std::string(1, '\0'))).find("kind 0"), std::string::npos);
    EXPECT_NE(refused(with(3, "\x0a")).find("kind 10"), std::string::npos);
    EXPECT_NE(refused(EncodeFrame(Request(1), std::string(2000, 'b'))).find("agreed to 1024"), std::string::npos);
    EXPECT_NE(refused(EncodeFrame(Request(0), "")).find("request id 0"), std::string::npos);
    EXPECT_NE(refused(EncodeFrame(FrameHeader{.kind = FrameKind::kPing, .request_id = 5}, "")).find("request id 5"),
              std::string::npos);
    EXPECT_NE(refused(EncodeFrame(Request(1, kMaxCredits + 1), "")).find("credits"), std::string::npos);
    EXPECT_NE(refused(EncodeFrame(FrameHeader{.kind = FrameKind::kRequest, .request_id = 1, .flags = 0x80}, ""))
                  .find("unknown flags"),
              std::string::npos);
    EXPECT_NE(refused(EncodeFrame(FrameHeader{.kind = FrameKind::kCredit, .flags = kFrameMore}, "")).find("flags"),
              std::string::npos);
    EXPECT_NE(refused(EncodeFrame(FrameHeader{.kind = FrameKind::kRequest, .request_id = 1, .flags = kFrameError}, ""))
                  .find("only a response"),
              std::string::npos);
    EXPECT_NE(refused(EncodeFrame(FrameHeader{.kind = FrameKind::kResponse, .request_id = 1, .flags = kFrameLanding},
                                  ""))
                  .find("only a request says where"),
              std::string::npos);
    EXPECT_NE(refused(EncodeFrame(FrameHeader{.kind = FrameKind::kRequest, .request_id = 1, .flags = kFrameWritten}, ""))
                  .find("a landed answer is a response"),
              std::string::npos);
    EXPECT_NE(refused(EncodeFrame(FrameHeader{.kind = FrameKind::kResponse,
                                              .request_id = 1,
                                              .flags = kFrameLanded | kFrameWritten},
                                  ""))
                  .find("landed or written"),
              std::string::npos);
    EXPECT_NE(refused(EncodeFrame(FrameHeader{.kind = FrameKind::kResponse,
                                              .request_id = 1,
                                              .flags = kFrameWritten | kFrameError},
                                  ""))
                  .find("a landed answer"),
              std::string::npos);
    for (uint16_t flags : {uint16_t{kFramePlaced}, uint16_t{kFramePlaced | kFrameMore | kFrameError},
                           uint16_t{kFramePlaced | kFrameMore | kFrameLanded}}) {
        EXPECT_NE(refused(EncodeFrame(FrameHeader{.kind = FrameKind::kResponse, .request_id = 1, .flags = flags}, ""))
                      .find("a placed piece"),
                  std::string::npos)
            << "flags " << flags;
    }
    EXPECT_NE(
        refused(EncodeFrame(
                    FrameHeader{.kind = FrameKind::kRequest, .request_id = 1, .flags = kFramePlaced | kFrameMore}, ""))
            .find("a placed piece"),
        std::string::npos);
    EXPECT_EQ(refused(EncodeFrame(
                  FrameHeader{.kind = FrameKind::kResponse, .request_id = 1, .flags = kFramePlaced | kFrameMore}, "x")),
              "accepted");
    EXPECT_NE(refused(with(30, "\x01")).find("reserved"), std::string::npos);
}

std::vector<std::pair<FrameHeader, std::string>> Frames() {
    return {
        {FrameHeader{.kind = FrameKind::kHello}, "hello body"},
        {Request(1, 8), std::string(100, 'a')},
        {Request(2), ""},
        {FrameHeader{.kind = FrameKind::kCredit, .credits = 16}, ""},
        {FrameHeader{.kind = FrameKind::kResponse, .request_id = 1, .flags = kFrameMore}, std::string(300, 'r')},
        {FrameHeader{.kind = FrameKind::kResponse, .request_id = 1}, "end"},
    };
}

std::string Stream() {
    std::string s;
    for (const auto& [h, body] : Frames()) {
        s += EncodeFrame(h, body);
    }
    return s;
}

// Reads what the reader gives after each feed of `pieces`.
std::vector<std::pair<FrameHeader, std::string>> ReadAll(const std::vector<std::string>& pieces, FrameReader* r) {
    std::vector<std::pair<FrameHeader, std::string>> out;
    for (const std::string& piece : pieces) {
        r->Feed(piece);
        while (auto f = r->Next()) {
            out.emplace_back(f->header, std::string(f->body));
        }
    }
    return out;
}

void ExpectSameFrames(const std::vector<std::pair<FrameHeader, std::string>>& got, const std::string& how) {
    auto want = Frames();
    ASSERT_EQ(got.size(), want.size()) << how;
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got[i].first.kind, want[i].first.kind) << how << ", frame " << i;
        EXPECT_EQ(got[i].first.request_id, want[i].first.request_id) << how << ", frame " << i;
        EXPECT_EQ(got[i].first.credits, want[i].first.credits) << how << ", frame " << i;
        EXPECT_EQ(got[i].first.flags, want[i].first.flags) << how << ", frame " << i;
        EXPECT_EQ(got[i].second, want[i].second) << how << ", frame " << i;
    }
}

TEST(PeerFrameReader, AStreamCutAnywhereReadsTheSame) {
    std::string stream = Stream();
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
        FrameReader r(1024);
        ExpectSameFrames(ReadAll({stream.substr(0, cut), stream.substr(cut)}, &r), "cut at " + std::to_string(cut));
        EXPECT_TRUE(r.status().ok());
        EXPECT_FALSE(r.mid_frame());
    }
    std::vector<std::string> bytes;
    for (char c : stream) {
        bytes.emplace_back(1, c);
    }
    FrameReader r(1024);
    ExpectSameFrames(ReadAll(bytes, &r), "a byte at a time");
}

TEST(PeerFrameReader, ABodyThatArrivesWholeIsNotCopied) {
    std::string stream = Stream();
    FrameReader r(1024);
    r.Feed(stream);
    while (auto f = r.Next()) {
        if (!f->body.empty()) {
            EXPECT_GE(f->body.data(), stream.data());
            EXPECT_LE(f->body.data() + f->body.size(), stream.data() + stream.size());
        }
    }
}

TEST(PeerFrameReader, AfterAMalformedFrameNothingMoreIsRead) {
    std::string stream = EncodeFrame(Request(1), "ok") + "garbage that is no header at all....." + Stream();
    FrameReader r(1024);
    r.Feed(stream);
    auto first = r.Next();
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->body, "ok");
    EXPECT_FALSE(r.Next().has_value());
    EXPECT_FALSE(r.status().ok());
    EXPECT_NE(r.status().message().find("magic"), std::string_view::npos) << r.status();
    r.Feed(Stream());
    EXPECT_FALSE(r.Next().has_value()) << "a broken connection reads nothing more";
}

TEST(PeerFrameReader, APeerThatStopsMidFrameIsSeen) {
    std::string frame = EncodeFrame(Request(1), std::string(100, 'x'));
    std::string half = frame.substr(0, 50);  // fed bytes must outlive their reading
    FrameReader r(1024);
    r.Feed(half);
    EXPECT_FALSE(r.Next().has_value());
    EXPECT_TRUE(r.mid_frame());
    EXPECT_TRUE(r.status().ok());
}

// A placed piece of a landed answer (frame.h, "Landing").
FrameHeader Placed(uint64_t id) {
    return FrameHeader{.kind = FrameKind::kResponse, .request_id = id, .flags = kFramePlaced | kFrameMore};
}

// A stream with a placed piece of 1000 bytes between two ordinary frames.
std::string PlacedStream(std::string* piece) {
    *piece = std::string(1000, 'p');
    for (size_t i = 0; i < piece->size(); i += 10) {
        (*piece)[i] = static_cast<char>('a' + i / 10 % 26);  // misplaced bytes show
    }
    return EncodeFrame(Request(1), "before") + EncodeFrame(Placed(7), *piece) + EncodeFrame(Request(2), "after");
}

TEST(PeerFrameReader, APlacedBodyGoesStraightToItsDestinationHoweverTheStreamIsSplit) {
    std::string piece;
    std::string stream = PlacedStream(&piece);
    for (size_t chunk : {size_t{1}, size_t{7}, size_t{100}, stream.size()}) {
        std::string dest(1000, '\0');
        FrameReader r(1024);
        int asked = 0;
        r.set_placement([&](const FrameHeader& h) -> char* {
            ++asked;
            return (h.flags & kFramePlaced) ? dest.data() : nullptr;
        });
        std::vector<std::string> bodies;
        for (size_t at = 0; at < stream.size(); at += chunk) {
            std::string_view part = std::string_view(stream).substr(at, chunk);
            r.Feed(part);
            while (auto f = r.Next()) {
                if (f->header.flags & kFramePlaced) {
                    EXPECT_EQ(f->body.data(), dest.data()) << "handed out where it was placed";
                }
                bodies.emplace_back(f->body);
            }
        }
        ASSERT_EQ(bodies.size(), 3u) << "chunks of " << chunk;
        EXPECT_EQ(bodies[0], "before");
        EXPECT_EQ(bodies[1], piece);
        EXPECT_EQ(bodies[2], "after");
        EXPECT_EQ(dest, piece) << "chunks of " << chunk;
        EXPECT_EQ(asked, 3) << "asked once per frame, at its header";
        EXPECT_FALSE(r.mid_frame());
    }
}

TEST(PeerFrameReader, TheRestOfAPlacedBodyCanBeReceivedThereByTheCaller) {
    std::string piece;
    std::string stream = PlacedStream(&piece);
    std::string dest(1000, '\0');
    FrameReader r(1024);
    r.set_placement([&](const FrameHeader& h) { return (h.flags & kFramePlaced) ? dest.data() : nullptr; });
    size_t piece_at = kFrameHeaderSize + 6 + kFrameHeaderSize;  // where its body begins in the stream
    std::string first = stream.substr(0, piece_at + 10);
    r.Feed(first);
    auto before = r.Next();
    ASSERT_TRUE(before.has_value());
    EXPECT_FALSE(r.Next().has_value());
    FrameReader::Placing p = r.placing();
    ASSERT_EQ(p.at, dest.data() + 10);
    ASSERT_EQ(p.left, 990u);
    std::memcpy(p.at, piece.data() + 10, 990);  // as a receive into it would
    r.Placed(990);
    EXPECT_EQ(r.placing().left, 0u);
    r.Feed({});
    auto placed = r.Next();
    ASSERT_TRUE(placed.has_value());
    EXPECT_EQ(placed->body, piece);
    std::string last = stream.substr(piece_at + 1000);
    r.Feed(last);
    auto after = r.Next();
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(after->body, "after");
}

TEST(PeerFrameReader, AnUnplacedBodyNeverTouchesItsDestinationAgain) {
    std::string piece;
    std::string stream = PlacedStream(&piece);
    std::string dest(1000, '\0');
    FrameReader r(1024);
    r.set_placement([&](const FrameHeader& h) { return (h.flags & kFramePlaced) ? dest.data() : nullptr; });
    size_t piece_at = kFrameHeaderSize + 6 + kFrameHeaderSize;
    std::string first = stream.substr(0, piece_at + 100), rest = stream.substr(piece_at + 100);
    r.Feed(first);
    ASSERT_TRUE(r.Next().has_value());
    EXPECT_FALSE(r.Next().has_value());
    r.Unplace();  // its caller gave up: the memory is someone else's now
    dest.assign(1000, 'z');
    r.Feed(rest);
    auto placed = r.Next();
    ASSERT_TRUE(placed.has_value());
    EXPECT_EQ(placed->body.size(), 1000u);
    EXPECT_NE(placed->body.data(), dest.data());
    EXPECT_EQ(placed->body.substr(100), std::string_view(piece).substr(100));
    EXPECT_EQ(dest, std::string(1000, 'z'));
    auto after = r.Next();
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(after->body, "after");
}

TEST(PeerCredits, ASenderSendsOnlyWhatTheReceiverGranted) {
    SendCredits send(2);
    EXPECT_TRUE(send.TryTake());
    EXPECT_TRUE(send.TryTake());
    EXPECT_FALSE(send.TryTake()) << "out of credits: wait";
    ASSERT_TRUE(send.Grant(3).ok());
    EXPECT_EQ(send.available(), 3u);
    EXPECT_FALSE(send.Grant(kMaxCredits).ok()) << "a peer cannot inflate the window";
    EXPECT_EQ(send.available(), 3u);
}

TEST(PeerCredits, AReceiverGrantsWhatItRepostsAndRefusesWhatItNeverGranted) {
    ReceiveCredits recv(/*window=*/4, /*low_water=*/2);
    for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(recv.Received().ok());
    }
    EXPECT_FALSE(recv.Received().ok()) << "a fifth frame on a window of four";
    recv.Reposted();
    EXPECT_FALSE(recv.ShouldReturn());
    recv.Reposted();
    EXPECT_TRUE(recv.ShouldReturn()) << "two owed: the low-water mark";
    EXPECT_EQ(recv.TakeOwed(), 2u);
    EXPECT_FALSE(recv.ShouldReturn());
    EXPECT_EQ(recv.outstanding(), 2u);
    EXPECT_TRUE(recv.Received().ok());
    EXPECT_TRUE(recv.Received().ok());
    EXPECT_FALSE(recv.Received().ok());
}

}  // namespace
}  // namespace zerohop::peer
