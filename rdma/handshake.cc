#include "rdma/handshake.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "rdma/frame.h"

namespace zerohop::peer {

namespace {

// Hello: max_body u32, window u32, key id length u8, key id, nonce.
// Challenge: max_body u32, window u32, nonce, mac.
// Proof: mac.
constexpr size_t kTermsSize = 8;
constexpr size_t kChallengeSize = kTermsSize + kNonceSize + kMacSize;
constexpr std::string_view kListenerLabel = "zerohop peer v1 listener";
constexpr std::string_view kDialerLabel = "zerohop peer v1 dialer";

template <typename T>
void Append(std::string* out, T v) {
    out->append(reinterpret_cast<const char*>(&v), sizeof v);  // little-endian hosts only
}

template <typename T>
T Read(std::string_view in, size_t at) {
    T v;
    std::memcpy(&v, in.data() + at, sizeof v);
    return v;
}

std::string Random(size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
        ssize_t r = ::getrandom(out.data() + got, n - got, 0);
        if (r > 0) {
            got += static_cast<size_t>(r);
        }  // EINTR: again (getrandom blocks only before the pool is seeded, at boot)
    }
    return out;
}

std::string Mac(std::string_view secret, std::string_view label, std::string_view transcript) {
    std::string input(label);
    input.append(transcript);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, &len);
    return std::string(reinterpret_cast<const char*>(out), len);
}

bool SameMac(std::string_view a, std::string_view b) {
    return a.size() == kMacSize && b.size() == kMacSize && CRYPTO_memcmp(a.data(), b.data(), kMacSize) == 0;
}

absl::Status CheckTerms(std::string_view who, uint32_t max_body, uint32_t window) {
    if (max_body < kFrameHeaderSize || max_body > kMaxFrameBody) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "peer handshake: the %s offers bodies of %d bytes; %d to %d work", who, max_body, kFrameHeaderSize,
            kMaxFrameBody));
    }
    if (window == 0 || window > kMaxCredits) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "peer handshake: the %s offers a window of %d buffers; 1 to %d work", who, window, kMaxCredits));
    }
    return absl::OkStatus();
}

}  // namespace

absl::Status CheckPeerKey(const PeerKey& key) {
    if (key.id.empty() || key.id.size() > kMaxKeyIdSize) {
        return absl::InvalidArgumentError(
            absl::StrFormat("peer key id \"%s\": 1 to %d bytes", key.id.substr(0, 40), kMaxKeyIdSize));
    }
    if (key.secret.size() < kMinSecretSize) {
        return absl::InvalidArgumentError(absl::StrFormat("peer key %s: the secret has %d bytes, at least %d are needed",
                                                          key.id, key.secret.size(), kMinSecretSize));
    }
    return absl::OkStatus();
}

DialerHandshake::DialerHandshake(PeerKey key, ConnectionTerms mine) : key_(std::move(key)), mine_(mine) {}

std::string DialerHandshake::Hello() {
    hello_.clear();
    Append<uint32_t>(&hello_, mine_.max_body);
    Append<uint32_t>(&hello_, mine_.window);
    Append<uint8_t>(&hello_, static_cast<uint8_t>(std::min(key_.id.size(), kMaxKeyIdSize)));
    hello_.append(key_.id.substr(0, kMaxKeyIdSize));
    hello_.append(Random(kNonceSize));
    return hello_;
}

absl::StatusOr<std::string> DialerHandshake::Answer(std::string_view challenge) {
    if (hello_.empty()) {
        return absl::FailedPreconditionError("peer handshake: a challenge before our hello");
    }
    if (challenge.size() != kChallengeSize) {
        return absl::InvalidArgumentError(absl::StrFormat("peer handshake: a challenge is %d bytes, got %d",
                                                          kChallengeSize, challenge.size()));
    }
    std::string_view said = challenge.substr(0, kChallengeSize - kMacSize);
    std::string transcript = hello_ + std::string(said);
    if (!SameMac(Mac(key_.secret, kListenerLabel, transcript), challenge.substr(said.size()))) {
        hello_.clear();
        return absl::PermissionDeniedError(absl::StrFormat(
            "peer handshake: the listener does not prove it holds key %s (a wrong key, or not our handshake)",
            key_.id));
    }
    uint32_t max_body = Read<uint32_t>(challenge, 0);
    uint32_t window = Read<uint32_t>(challenge, 4);
    if (absl::Status terms = CheckTerms("listener", max_body, window); !terms.ok()) {
        return terms;
    }
    agreed_ = Agreed{.key_id = key_.id,
                     .max_body = std::min(max_body, mine_.max_body),
                     .send_credits = window,
                     .receive_window = mine_.window};
    std::string proof = Mac(key_.secret, kDialerLabel, hello_ + std::string(challenge));
    hello_.clear();  // one answer per hello
    return proof;
}

ListenerHandshake::ListenerHandshake(SecretOf secret_of, ConnectionTerms mine)
    : secret_of_(std::move(secret_of)), mine_(mine) {}

absl::StatusOr<std::string> ListenerHandshake::Challenge(std::string_view hello) {
    if (challenged_) {
        return absl::FailedPreconditionError("peer handshake: a second hello");
    }
    if (hello.size() < kTermsSize + 1) {
        return absl::InvalidArgumentError(absl::StrFormat("peer handshake: a hello of %d bytes", hello.size()));
    }
    uint32_t max_body = Read<uint32_t>(hello, 0);
    uint32_t window = Read<uint32_t>(hello, 4);
    size_t id_size = Read<uint8_t>(hello, 8);
    if (id_size == 0 || hello.size() != kTermsSize + 1 + id_size + kNonceSize) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "peer handshake: a hello of %d bytes naming a key id of %d bytes", hello.size(), id_size));
    }
    if (absl::Status terms = CheckTerms("dialer", max_body, window); !terms.ok()) {
        return terms;
    }
    std::string key_id(hello.substr(kTermsSize + 1, id_size));
    std::optional<std::string> secret = secret_of_(key_id);
    secret_ = secret ? *secret : Random(kMacSize);  // an unknown id fails at the proof, like a wrong key
    std::string challenge;
    Append<uint32_t>(&challenge, mine_.max_body);
    Append<uint32_t>(&challenge, mine_.window);
    challenge.append(Random(kNonceSize));
    transcript_ = std::string(hello) + challenge;
    challenge.append(Mac(secret_, kListenerLabel, transcript_));
    transcript_ = std::string(hello) + challenge;
    challenged_ = true;
    agreed_ = Agreed{.key_id = std::move(key_id),
                     .max_body = std::min(max_body, mine_.max_body),
                     .send_credits = window,
                     .receive_window = mine_.window};
    return challenge;
}

absl::Status ListenerHandshake::Verify(std::string_view proof) {
    if (!challenged_) {
        return absl::FailedPreconditionError("peer handshake: a proof before any hello");
    }
    challenged_ = false;  // one proof per challenge: another try needs a new handshake
    if (!SameMac(Mac(secret_, kDialerLabel, transcript_), proof)) {
        std::string id = agreed_.key_id;
        agreed_ = {};
        return absl::PermissionDeniedError(absl::StrFormat(
            "peer handshake: the dialer does not prove it holds key \"%s\" (a wrong or unknown key, or a "
            "replayed handshake)",
            absl::CHexEscape(id.substr(0, 64))));
    }
    return absl::OkStatus();
}

}  // namespace zerohop::peer
