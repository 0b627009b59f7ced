// libFuzzer target: the peer wire's frame reader (rdma/frame.h) and handshake
// (rdma/handshake.h) on hostile bytes.
//
// The input is a byte stream as a peer would send it. It is read twice: whole, and cut into
// pieces whose sizes come from the stream itself, and cut so with placed pieces' bodies put
// in memory of their own (partly received there directly). The reads must give the same
// frames and the same verdict; every frame given must re-encode to exactly the bytes it came from, and
// the frames must account for no more bytes than there were. The bodies of its hello,
// challenge and proof frames go to a listener's and a dialer's handshake: malformed ones are
// refused, and none is ever taken for proof of the key (the peer does not hold it).

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "rdma/frame.h"
#include "rdma/handshake.h"

namespace {

using zerohop::peer::EncodeHeader;
using zerohop::peer::FrameReader;
using zerohop::peer::kFrameHeaderSize;

constexpr uint32_t kMaxBody = 4096;
const std::string kSecret = "the-secret-this-peer-does-not-hold";

// What a peer without the key gets from a handshake by saying `frames`: it must never be
// taken for one that holds it.
void Handshake(const std::vector<std::string>& frames) {
    using namespace zerohop::peer;
    auto secret_of = [](std::string_view) -> std::optional<std::string> { return kSecret; };
    ListenerHandshake listener(secret_of, {});
    DialerHandshake dialer({.id = "us", .secret = kSecret}, {});
    dialer.Hello();
    for (const std::string& f : frames) {
        auto h = DecodeHeader(f, kMaxBody);
        std::string_view body = std::string_view(f).substr(kFrameHeaderSize);
        if (h->kind == FrameKind::kHello) {
            (void)listener.Challenge(body);
        } else if (h->kind == FrameKind::kProof && listener.Verify(body).ok()) {
            abort();  // a proof of a key the peer does not hold
        } else if (h->kind == FrameKind::kChallenge && dialer.Answer(body).ok()) {
            abort();  // a challenge that proves a key the peer does not hold
        }
    }
}

struct Read {
    std::vector<std::string> frames;  // header bytes re-encoded, then the body
    bool ok = true;
};

// Reads `stream` cut at `cuts`. With `place`, the bodies of placed pieces go to memory of
// their own (as into a caller's landing), and whatever of such a body is still to come after
// a cut is taken straight from the stream, as a receive into the landing would.
Read ReadPieces(std::string_view stream, const std::vector<size_t>& cuts, bool place) {
    Read out;
    FrameReader r(kMaxBody);
    std::vector<std::string> landings;  // each stays alive while the reader may write it
    if (place) {
        r.set_placement([&](const zerohop::peer::FrameHeader& h) -> char* {
            if (!(h.flags & zerohop::peer::kFramePlaced)) {
                return nullptr;
            }
            landings.emplace_back(h.length, '\0');
            return landings.back().data();
        });
    }
    auto take_frames = [&] {
        while (auto f = r.Next()) {
            std::string bytes(kFrameHeaderSize, '\0');
            EncodeHeader(f->header, bytes.data());
            if (f->header.length != f->body.size()) {
                abort();
            }
            out.frames.push_back(bytes + std::string(f->body));
        }
    };
    size_t at = 0;
    std::vector<std::string> pieces;  // each piece stays alive while the reader may use it
    for (size_t i = 0; i <= cuts.size(); ++i) {
        size_t end = i < cuts.size() ? cuts[i] : stream.size();
        if (end <= at) {
            continue;  // (taken already by a receive into a landing)
        }
        pieces.emplace_back(stream.substr(at, end - at));
        at = end;
        r.Feed(pieces.back());
        take_frames();
        if (FrameReader::Placing p = r.placing(); place && p.left > 0 && at < stream.size()) {
            size_t n = std::min(p.left, stream.size() - at);
            std::memcpy(p.at, stream.data() + at, n);
            r.Placed(n);
            at += n;
            r.Feed({});
            take_frames();
        }
    }
    out.ok = r.status().ok();
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view stream(reinterpret_cast<const char*>(data), size);
    Read whole = ReadPieces(stream, {}, false);
    std::vector<size_t> cuts;
    for (size_t at = 0; at < size;) {
        at += 1 + data[at] % 61;
        if (at < size) {
            cuts.push_back(at);
        }
    }
    Read pieces = ReadPieces(stream, cuts, false);
    Read placed = ReadPieces(stream, cuts, true);
    if (whole.frames != pieces.frames || whole.ok != pieces.ok || whole.frames != placed.frames ||
        whole.ok != placed.ok) {
        abort();  // the same stream cut otherwise (or placed) read otherwise
    }
    size_t consumed = 0;
    for (const std::string& f : whole.frames) {
        if (consumed + f.size() > size || std::memcmp(data + consumed, f.data(), f.size()) != 0) {
            abort();  // a frame that is not the bytes it came from
        }
        consumed += f.size();
    }
    Handshake(whole.frames);
    return 0;
}
