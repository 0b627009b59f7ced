// How two daemons prove they hold one pre-shared key (rdma/handshake.h): the right key on
// both sides agrees on terms; a wrong key on either side, an unknown key id, a replayed
// challenge or proof, or a term changed in flight is refused; the key never crosses the
// wire; malformed bodies are refused by name.

#include "rdma/handshake.h"

#include <functional>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "rdma/frame.h"

namespace zerohop::peer {
namespace {

const std::string kSecret = "0123456789abcdef-the-shared-secret";

ListenerHandshake::SecretOf Keys(std::map<std::string, std::string> keys) {
    return [keys = std::move(keys)](std::string_view id) -> std::optional<std::string> {
        auto it = keys.find(std::string(id));
        return it == keys.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
}

struct Outcome {
    absl::Status dialer;    // of Answer
    absl::Status listener;  // of Verify
};

// A whole handshake; `tamper` may change the challenge in flight.
Outcome Shake(DialerHandshake& d, ListenerHandshake& l, std::function<void(std::string*)> tamper = nullptr) {
    auto challenge = l.Challenge(d.Hello());
    if (!challenge.ok()) {
        return {absl::OkStatus(), challenge.status()};
    }
    if (tamper) {
        tamper(&*challenge);
    }
    auto proof = d.Answer(*challenge);
    if (!proof.ok()) {
        return {proof.status(), absl::AbortedError("never got a proof")};
    }
    return {absl::OkStatus(), l.Verify(*proof)};
}

TEST(PeerHandshake, TheRightKeyAgreesOnTheSmallerBodyAndEachSidesWindow) {
    DialerHandshake d({.id = "node-a", .secret = kSecret}, {.max_body = 1 << 20, .window = 64});
    ListenerHandshake l(Keys({{"node-a", kSecret}}), {.max_body = 4 << 20, .window = 128});
    Outcome o = Shake(d, l);
    ASSERT_TRUE(o.dialer.ok()) << o.dialer;
    ASSERT_TRUE(o.listener.ok()) << o.listener;
    EXPECT_EQ(d.agreed().key_id, "node-a");
    EXPECT_EQ(l.agreed().key_id, "node-a");
    EXPECT_EQ(d.agreed().max_body, 1u << 20);
    EXPECT_EQ(l.agreed().max_body, 1u << 20);
    EXPECT_EQ(d.agreed().send_credits, 128u) << "the dialer may send as many frames as the listener posted";
    EXPECT_EQ(d.agreed().receive_window, 64u);
    EXPECT_EQ(l.agreed().send_credits, 64u);
    EXPECT_EQ(l.agreed().receive_window, 128u);
}

TEST(PeerHandshake, AWrongKeyOnEitherSideIsRefused) {
    {
        // The listener holds another secret: the dialer sees it cannot prove the key.
        DialerHandshake d({.id = "node-a", .secret = kSecret}, {});
        ListenerHandshake l(Keys({{"node-a", kSecret + "x"}}), {});
        Outcome o = Shake(d, l);
        EXPECT_EQ(o.dialer.code(), absl::StatusCode::kPermissionDenied) << o.dialer;
        EXPECT_NE(o.dialer.message().find("listener does not prove it holds key node-a"), std::string_view::npos)
            << o.dialer;
    }
    {
        // A dialer that skips the listener's check and answers anyway is refused too.
        DialerHandshake honest({.id = "node-a", .secret = kSecret}, {});
        ListenerHandshake l(Keys({{"node-a", kSecret}}), {});
        DialerHandshake liar({.id = "node-a", .secret = "a-guess-at-the-secret!"}, {});
        std::string hello = liar.Hello();
        auto challenge = l.Challenge(hello);
        ASSERT_TRUE(challenge.ok());
        EXPECT_EQ(liar.Answer(*challenge).status().code(), absl::StatusCode::kPermissionDenied);
        // Its best guess at a proof: a proof made with the wrong secret.
        DialerHandshake forger({.id = "node-a", .secret = "a-guess-at-the-secret!"}, {});
        ListenerHandshake mirror(Keys({{"node-a", "a-guess-at-the-secret!"}}), {});
        auto forged = forger.Answer(*mirror.Challenge(forger.Hello()));
        ASSERT_TRUE(forged.ok());
        absl::Status verified = l.Verify(*forged);
        EXPECT_EQ(verified.code(), absl::StatusCode::kPermissionDenied) << verified;
        EXPECT_NE(verified.message().find("does not prove it holds key \"node-a\""), std::string_view::npos)
            << verified;
    }
}

TEST(PeerHandshake, AnUnknownKeyIdIsRefusedAtTheProofLikeAWrongKey) {
    DialerHandshake d({.id = "stranger", .secret = kSecret}, {});
    ListenerHandshake l(Keys({{"node-a", kSecret}}), {});
    auto challenge = l.Challenge(d.Hello());
    ASSERT_TRUE(challenge.ok()) << "an unknown id must not be told apart at the hello";
    DialerHandshake known({.id = "node-a", .secret = kSecret}, {});
    ListenerHandshake other(Keys({{"node-a", kSecret}}), {});
    EXPECT_EQ(challenge->size(), other.Challenge(known.Hello())->size());
    // The dialer sees a challenge it cannot check; a dialer that answers anyway is refused.
    EXPECT_EQ(d.Answer(*challenge).status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(l.Verify(std::string(kMacSize, 'p')).code(), absl::StatusCode::kPermissionDenied);
}

TEST(PeerHandshake, ARecordedHandshakeCannotBeReplayed) {
    // Record an honest handshake.
    DialerHandshake d({.id = "node-a", .secret = kSecret}, {});
    ListenerHandshake l(Keys({{"node-a", kSecret}}), {});
    std::string hello = d.Hello();
    std::string challenge = *l.Challenge(hello);
    std::string proof = *d.Answer(challenge);
    ASSERT_TRUE(l.Verify(proof).ok());

    // Replayed to a listener: its challenge has a fresh nonce, the old proof answers another.
    ListenerHandshake l2(Keys({{"node-a", kSecret}}), {});
    ASSERT_TRUE(l2.Challenge(hello).ok());
    EXPECT_EQ(l2.Verify(proof).code(), absl::StatusCode::kPermissionDenied);

    // Replayed to a dialer: its hello has a fresh nonce, the old challenge answers another.
    DialerHandshake d2({.id = "node-a", .secret = kSecret}, {});
    d2.Hello();
    EXPECT_EQ(d2.Answer(challenge).status().code(), absl::StatusCode::kPermissionDenied);

    // One proof per challenge: a second try on the same handshake is refused.
    ListenerHandshake l3(Keys({{"node-a", kSecret}}), {});
    DialerHandshake d3({.id = "node-a", .secret = kSecret}, {});
    auto c3 = l3.Challenge(d3.Hello());
    EXPECT_EQ(l3.Verify(std::string(kMacSize, 'x')).code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(l3.Verify(*d3.Answer(*c3)).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PeerHandshake, ATermChangedInFlightBreaksTheProof) {
    DialerHandshake d({.id = "node-a", .secret = kSecret}, {.max_body = 1 << 20, .window = 64});
    ListenerHandshake l(Keys({{"node-a", kSecret}}), {.max_body = 1 << 20, .window = 64});
    // A man in the middle shrinks the listener's window to starve the dialer.
    Outcome o = Shake(d, l, [](std::string* challenge) { (*challenge)[4] = 1; });
    EXPECT_EQ(o.dialer.code(), absl::StatusCode::kPermissionDenied) << o.dialer;

    // Or grows the dialer's offered body in its hello.
    DialerHandshake d2({.id = "node-a", .secret = kSecret}, {.max_body = 1 << 20, .window = 64});
    ListenerHandshake l2(Keys({{"node-a", kSecret}}), {.max_body = 8 << 20, .window = 64});
    std::string hello = d2.Hello();
    hello[2] = 0x70;  // max_body 0x00700000 bytes instead of 0x00100000
    auto challenge = l2.Challenge(hello);
    ASSERT_TRUE(challenge.ok());
    EXPECT_EQ(d2.Answer(*challenge).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(PeerHandshake, TheSecretNeverCrossesTheWire) {
    DialerHandshake d({.id = "node-a", .secret = kSecret}, {});
    ListenerHandshake l(Keys({{"node-a", kSecret}}), {});
    std::string hello = d.Hello();
    std::string challenge = *l.Challenge(hello);
    std::string proof = *d.Answer(challenge);
    for (const std::string& said : {hello, challenge, proof}) {
        // Not the secret, nor any 8 bytes of it.
        for (size_t at = 0; at + 8 <= kSecret.size(); ++at) {
            EXPECT_EQ(said.find(kSecret.substr(at, 8)), std::string::npos);
        }
    }
    // Two hellos of one key differ (fresh nonces).
    EXPECT_NE(d.Hello(), hello);
}

TEST(PeerHandshake, MalformedBodiesAndKeysAreRefusedByName) {
    auto challenge = [](std::string hello) {
        ListenerHandshake l(Keys({{"node-a", kSecret}}), {});
        auto c = l.Challenge(hello);
        return c.ok() ? std::string("accepted") : std::string(c.status().message());
    };
    DialerHandshake d({.id = "node-a", .secret = kSecret}, {});
    std::string good = d.Hello();
    EXPECT_EQ(challenge(good), "accepted");
    EXPECT_NE(challenge("").find("a hello of 0 bytes"), std::string::npos);
    EXPECT_NE(challenge(good.substr(0, good.size() - 1)).find("key id of 6 bytes"), std::string::npos);
    EXPECT_NE(challenge(good + "x").find("key id of 6 bytes"), std::string::npos);
    std::string no_id = good;
    no_id[8] = 0;
    EXPECT_NE(challenge(no_id).find("key id of 0 bytes"), std::string::npos);
    DialerHandshake tiny({.id = "node-a", .secret = kSecret}, {.max_body = 8, .window = 64});
    EXPECT_NE(challenge(tiny.Hello()).find("bodies of 8 bytes"), std::string::npos);
    DialerHandshake huge({.id = "node-a", .secret = kSecret}, {.max_body = 1 << 20, .window = kMaxCredits + 1});
    EXPECT_NE(challenge(huge.Hello()).find("window of 65537"), std::string::npos);
    DialerHandshake none({.id = "node-a", .secret = kSecret}, {.max_body = 1 << 20, .window = 0});
    EXPECT_NE(challenge(none.Hello()).find("window of 0"), std::string::npos);

    DialerHandshake d2({.id = "node-a", .secret = kSecret}, {});
    EXPECT_EQ(d2.Answer(std::string(72, 'c')).status().code(), absl::StatusCode::kFailedPrecondition)
        << "a challenge before our hello";
    d2.Hello();
    EXPECT_NE(d2.Answer("short").status().message().find("a challenge is 72 bytes, got 5"), std::string_view::npos);
    ListenerHandshake l(Keys({}), {});
    EXPECT_EQ(l.Verify(std::string(kMacSize, 'p')).code(), absl::StatusCode::kFailedPrecondition);

    EXPECT_TRUE(CheckPeerKey({.id = "node-a", .secret = kSecret}).ok());
    EXPECT_NE(CheckPeerKey({.id = "", .secret = kSecret}).message().find("1 to 255 bytes"), std::string_view::npos);
    EXPECT_NE(CheckPeerKey({.id = std::string(256, 'k'), .secret = kSecret}).message().find("1 to 255 bytes"),
              std::string_view::npos);
    EXPECT_NE(CheckPeerKey({.id = "node-a", .secret = "short"}).message().find("the secret has 5 bytes, at least 16"),
              std::string_view::npos);
}

}  // namespace
}  // namespace zerohop::peer
