#include "rdma/frame.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"

namespace zerohop::peer {

namespace {

template <typename T>
void Put(char* out, T v) {
    std::memcpy(out, &v, sizeof v);  // little-endian hosts only (x86-64, arm64)
}

template <typename T>
T Get(const char* in) {
    T v;
    std::memcpy(&v, in, sizeof v);
    return v;
}

constexpr uint16_t kKnownFlags = kFrameMore | kFrameError | kFrameLanding | kFrameLanded | kFrameWritten | kFramePlaced;

}  // namespace

bool IsRequestLevel(FrameKind kind) { return kind == FrameKind::kRequest || kind == FrameKind::kResponse; }

std::string_view FrameKindName(FrameKind kind) {
    switch (kind) {
        case FrameKind::kHello: return "hello";
        case FrameKind::kChallenge: return "challenge";
        case FrameKind::kProof: return "proof";
        case FrameKind::kRequest: return "request";
        case FrameKind::kResponse: return "response";
        case FrameKind::kCredit: return "credit";
        case FrameKind::kPing: return "ping";
        case FrameKind::kPong: return "pong";
        case FrameKind::kGoaway: return "goaway";
    }
    return "unknown";
}

void EncodeHeader(const FrameHeader& h, char out[kFrameHeaderSize]) {
    Put<uint16_t>(out, kFrameMagic);
    Put<uint8_t>(out + 2, kFrameVersion);
    Put<uint8_t>(out + 3, static_cast<uint8_t>(h.kind));
    Put<uint32_t>(out + 4, h.length);
    Put<uint64_t>(out + 8, h.request_id);
    Put<uint64_t>(out + 16, h.deadline_ns);
    Put<uint32_t>(out + 24, h.credits);
    Put<uint16_t>(out + 28, h.flags);
    Put<uint16_t>(out + 30, 0);
}

std::string EncodeFrame(FrameHeader h, std::string_view body) {
    h.length = static_cast<uint32_t>(body.size());
    std::string out(kFrameHeaderSize, '\0');
    EncodeHeader(h, out.data());
    out.append(body);
    return out;
}

absl::StatusOr<FrameHeader> DecodeHeader(std::string_view bytes, uint32_t max_body) {
    if (bytes.size() < kFrameHeaderSize) {
        return absl::InvalidArgumentError(
            absl::StrFormat("peer frame: a header is %d bytes, got %d", kFrameHeaderSize, bytes.size()));
    }
    const char* p = bytes.data();
    if (uint16_t magic = Get<uint16_t>(p); magic != kFrameMagic) {
        return absl::InvalidArgumentError(absl::StrFormat("peer frame: magic 0x%04x is not 0x%04x (not a zerohop peer, "
                                                          "or the stream lost its framing)",
                                                          magic, kFrameMagic));
    }
    if (uint8_t version = Get<uint8_t>(p + 2); version != kFrameVersion) {
        return absl::InvalidArgumentError(
            absl::StrFormat("peer frame: version %d; this daemon speaks %d", version, kFrameVersion));
    }
    FrameHeader h;
    uint8_t kind = Get<uint8_t>(p + 3);
    if (kind < static_cast<uint8_t>(FrameKind::kHello) || kind > static_cast<uint8_t>(FrameKind::kGoaway)) {
        return absl::InvalidArgumentError(absl::StrFormat("peer frame: kind %d is not known", kind));
    }
    h.kind = static_cast<FrameKind>(kind);
    h.length = Get<uint32_t>(p + 4);
    h.request_id = Get<uint64_t>(p + 8);
    h.deadline_ns = Get<uint64_t>(p + 16);
    h.credits = Get<uint32_t>(p + 24);
    h.flags = Get<uint16_t>(p + 28);
    std::string_view kind_name = FrameKindName(h.kind);
    if (h.length > max_body) {
        return absl::InvalidArgumentError(absl::StrFormat("peer frame: a %s of %d bytes; the connection agreed to %d",
                                                          kind_name, h.length, max_body));
    }
    if (IsRequestLevel(h.kind) != (h.request_id != 0)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "peer frame: a %s with request id %d (requests and responses carry one, other frames 0)", kind_name,
            h.request_id));
    }
    if (h.credits > kMaxCredits) {
        return absl::InvalidArgumentError(
            absl::StrFormat("peer frame: grants %d credits; at most %d", h.credits, kMaxCredits));
    }
    if ((h.flags & ~kKnownFlags) != 0) {
        return absl::InvalidArgumentError(absl::StrFormat("peer frame: unknown flags 0x%04x", h.flags));
    }
    if (h.flags != 0 && !IsRequestLevel(h.kind)) {
        return absl::InvalidArgumentError(absl::StrFormat("peer frame: a %s with flags 0x%04x", kind_name, h.flags));
    }
    if ((h.flags & kFrameError) != 0 && h.kind != FrameKind::kResponse) {
        return absl::InvalidArgumentError("peer frame: only a response carries an error");
    }
    if ((h.flags & kFrameLanding) != 0 && h.kind != FrameKind::kRequest) {
        return absl::InvalidArgumentError("peer frame: only a request says where its answer lands");
    }
    if ((h.flags & kFramePlaced) != 0 && (h.kind != FrameKind::kResponse || (h.flags & ~kFramePlaced) != kFrameMore)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "peer frame: flags 0x%04x (a placed piece is a response's, followed by more, and nothing else)", h.flags));
    }
    if ((h.flags & (kFrameLanded | kFrameWritten)) != 0 &&
        (h.kind != FrameKind::kResponse || (h.flags & kFrameError) != 0 ||
         (h.flags & (kFrameLanded | kFrameWritten)) == (kFrameLanded | kFrameWritten))) {
        return absl::InvalidArgumentError(
            absl::StrFormat("peer frame: flags 0x%04x (a landed answer is a response, landed or written)", h.flags));
    }
    if (Get<uint16_t>(p + 30) != 0) {
        return absl::InvalidArgumentError("peer frame: reserved bytes are not 0");
    }
    return h;
}

void FrameReader::Feed(std::string_view bytes) { input_ = bytes; }

std::optional<std::string_view> FrameReader::Take(size_t n) {
    if (partial_.empty() && input_.size() >= n) {
        std::string_view whole = input_.substr(0, n);  // in place: no copy
        input_.remove_prefix(n);
        return whole;
    }
    size_t take = std::min(n - partial_.size(), input_.size());
    partial_.append(input_.substr(0, take));
    input_.remove_prefix(take);
    if (partial_.size() < n) {
        return std::nullopt;
    }
    return std::string_view(partial_);
}

std::optional<Frame> FrameReader::Next() {
    if (delivered_) {
        partial_.clear();
        delivered_ = false;
    }
    if (!status_.ok()) {
        return std::nullopt;
    }
    if (!header_) {
        auto bytes = Take(kFrameHeaderSize);
        if (!bytes) {
            return std::nullopt;
        }
        auto h = DecodeHeader(*bytes, max_body_);
        partial_.clear();
        if (!h.ok()) {
            status_ = h.status();
            input_ = {};
            return std::nullopt;
        }
        header_ = *h;
        place_ = placement_ && header_->length > 0 ? placement_(*header_) : nullptr;
        placed_ = 0;
    }
    std::string_view body;
    if (place_ != nullptr) {
        size_t take = std::min<size_t>(header_->length - placed_, input_.size());
        if (take > 0) {  // (an empty feed may have no data pointer at all)
            std::memcpy(place_ + placed_, input_.data(), take);
        }
        input_.remove_prefix(take);
        placed_ += take;
        if (placed_ < header_->length) {
            return std::nullopt;
        }
        body = std::string_view(place_, placed_);
        place_ = nullptr;
    } else {
        auto taken = Take(header_->length);
        if (!taken) {
            return std::nullopt;
        }
        body = *taken;
        delivered_ = !partial_.empty();  // gathered: handed out from partial_, cleared next call
    }
    Frame f{*header_, body};
    header_.reset();
    return f;
}

FrameReader::Placing FrameReader::placing() const {
    if (place_ == nullptr || !input_.empty()) {
        return {};
    }
    return {.at = place_ + placed_, .left = header_->length - placed_};
}

void FrameReader::Unplace() {
    if (place_ != nullptr) {
        partial_.assign(placed_, '\0');
        place_ = nullptr;
    }
}

void FrameReader::Placed(size_t n) { placed_ += std::min<size_t>(n, header_->length - placed_); }

std::string FrameReader::TakeBody(const Frame& f) {
    if (delivered_ && !f.body.empty() && f.body.data() == partial_.data()) {
        std::string body = std::move(partial_);
        partial_.clear();
        return body;
    }
    return std::string(f.body);
}

bool SendCredits::TryTake() {
    if (available_ == 0) {
        return false;
    }
    --available_;
    return true;
}

absl::Status SendCredits::Grant(uint32_t credits) {
    if (credits > kMaxCredits - available_) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "peer: granted %d credits on top of %d; a window holds at most %d", credits, available_, kMaxCredits));
    }
    available_ += credits;
    return absl::OkStatus();
}

absl::Status ReceiveCredits::Received() {
    if (outstanding_ == 0) {
        return absl::InvalidArgumentError("peer: a frame arrived without a credit for it (flow control ignored)");
    }
    --outstanding_;
    return absl::OkStatus();
}

uint32_t ReceiveCredits::TakeOwed() {
    uint32_t n = owed_;
    outstanding_ += n;
    owed_ = 0;
    return n;
}

}  // namespace zerohop::peer
