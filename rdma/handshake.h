#pragma once
// How two daemons prove to each other that they hold the same pre-shared key, without the
// key crossing the wire, and agree on the terms of their connection.
//
//   dialer                                   listener
//   hello:     key id, terms, nonce_d   ->
//                                       <-   challenge: terms, nonce_l,
//                                                       mac_l = HMAC(key, "listener" | hello | terms, nonce_l)
//   checks mac_l (the listener holds the key)
//   proof:     mac_d = HMAC(key, "dialer" | hello | challenge)  ->
//                                            checks mac_d (the dialer holds the key)
//
// Each MAC covers everything said before it, so a man in the middle can change no term
// (a smaller window, a larger body) without breaking it, and each side's fresh nonce makes
// a recorded handshake useless: a replayed proof answers a challenge that is no longer
// asked, a replayed challenge answers a hello that was never sent. A listener given an
// unknown key id goes on with a random key and refuses at the proof, with the message a
// wrong key gets: it tells a prober nothing about which key ids exist.
//
// The bodies travel in hello, challenge and proof frames (frame.h); nothing here does I/O.
//
//   DialerHandshake d({.id = "node-a", .secret = key}, {.max_body = 1 << 20, .window = 64});
//   send(kHello, d.Hello());
//   auto proof = d.Answer(challenge_body);      // fails: the listener does not hold the key
//   send(kProof, *proof);
//
//   ListenerHandshake l(secret_of, {.max_body = 4 << 20, .window = 128});
//   auto challenge = l.Challenge(hello_body);   // fails only on a malformed hello
//   send(kChallenge, *challenge);
//   l.Verify(proof_body);                       // PermissionDenied: wrong key, or unknown id

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zerohop::peer {

inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kMacSize = 32;  // HMAC-SHA256
inline constexpr size_t kMaxKeyIdSize = 255;
// Shorter secrets are refused: a key must not be guessable offline from a recorded handshake.
inline constexpr size_t kMinSecretSize = 16;

struct PeerKey {
    std::string id;      // names the key (a peer may hold several, each with its own rights)
    std::string secret;  // at least kMinSecretSize bytes
};

// What a side offers: the largest frame body it takes, and how many receive buffers it
// posts for the other side (the credits the other side starts with).
struct ConnectionTerms {
    uint32_t max_body = 1 << 20;
    uint32_t window = 64;
};

// What both sides agreed to, as one side sees it.
struct Agreed {
    std::string key_id;
    uint32_t max_body = 0;         // the smaller of the two offers: both directions
    uint32_t send_credits = 0;     // the other side's window
    uint32_t receive_window = 0;   // ours
};

// Checks a key before use: InvalidArgument naming what is wrong.
absl::Status CheckPeerKey(const PeerKey& key);

class DialerHandshake {
public:
    DialerHandshake(PeerKey key, ConnectionTerms mine);

    // The hello frame's body, with a fresh nonce.
    std::string Hello();
    // Checks the listener's challenge; the proof frame's body. PermissionDenied when the
    // listener does not hold the key (or answers another hello); InvalidArgument when the
    // challenge is malformed.
    absl::StatusOr<std::string> Answer(std::string_view challenge);
    // Valid after Answer succeeded.
    const Agreed& agreed() const { return agreed_; }

private:
    PeerKey key_;
    ConnectionTerms mine_;
    std::string hello_;
    Agreed agreed_;
};

class ListenerHandshake {
public:
    // The secret of a key id this listener accepts, or nothing.
    using SecretOf = std::function<std::optional<std::string>(std::string_view key_id)>;

    ListenerHandshake(SecretOf secret_of, ConnectionTerms mine);

    // The challenge frame's body for a hello. InvalidArgument when the hello is malformed
    // (or offers terms no connection can work with).
    absl::StatusOr<std::string> Challenge(std::string_view hello);
    // Checks the dialer's proof. PermissionDenied when wrong (a wrong or unknown key, or a
    // proof of another handshake).
    absl::Status Verify(std::string_view proof);
    // Valid after Verify succeeded.
    const Agreed& agreed() const { return agreed_; }

private:
    SecretOf secret_of_;
    ConnectionTerms mine_;
    std::string secret_;  // of the key the hello named (random when it named none we know)
    std::string transcript_;  // hello and challenge, as sent
    bool challenged_ = false;
    Agreed agreed_;
};

}  // namespace zerohop::peer
