#pragma once
// Bounds-checked binary encoding shared by the session wire (wire/protocol.h) and the
// embedded store's records. Never installed: it is not part of the public API.
//
// Little-endian fixed-width integers, LEB128 varints and length-prefixed byte strings.
// A ByteReader never reads past its input: every accessor reports failure instead, so
// decoding hostile bytes (shared memory, a corrupt record) cannot crash.
//
//   std::string buf;
//   ByteWriter w(&buf);
//   w.PutVarint(42);
//   w.PutBytes("hello");
//   ByteReader r(buf);
//   uint64_t n; std::string_view s;
//   if (!r.GetVarint(&n) || !r.GetBytes(&s)) { /* corrupt */ }

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace zerohop {

class ByteWriter {
public:
    explicit ByteWriter(std::string* out) : out_(out) {}

    void PutU8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
    void PutFixed32(uint32_t v) { PutRaw(&v, sizeof v); }
    void PutFixed64(uint64_t v) { PutRaw(&v, sizeof v); }
    void PutDouble(double v) { PutRaw(&v, sizeof v); }
    void PutVarint(uint64_t v) {
        char buf[10];
        size_t n = 0;
        while (v >= 0x80) {
            buf[n++] = static_cast<char>(v | 0x80);
            v >>= 7;
        }
        buf[n++] = static_cast<char>(v);
        out_->append(buf, n);
    }
    void PutBytes(std::string_view s) {
        PutVarint(s.size());
        out_->append(s.data(), s.size());
    }
    void PutRaw(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }
    // Big-endian, so that encoded integers sort like the numbers in a key.
    void PutBigEndian64(uint64_t v) {
        char buf[8];
        for (int i = 7; i >= 0; --i) {
            buf[i] = static_cast<char>(v & 0xff);
            v >>= 8;
        }
        out_->append(buf, 8);
    }

private:
    std::string* out_;
};

class ByteReader {
public:
    explicit ByteReader(std::string_view in) : in_(in) {}

    bool GetU8(uint8_t* v) {
        if (in_.empty()) {
            return false;
        }
        *v = static_cast<uint8_t>(in_[0]);
        in_.remove_prefix(1);
        return true;
    }
    bool GetFixed32(uint32_t* v) { return GetRaw(v, sizeof *v); }
    bool GetFixed64(uint64_t* v) { return GetRaw(v, sizeof *v); }
    bool GetDouble(double* v) { return GetRaw(v, sizeof *v); }
    bool GetVarint(uint64_t* v) {
        uint64_t result = 0;
        for (int shift = 0; shift <= 63 && !in_.empty(); shift += 7) {
            uint8_t byte = static_cast<uint8_t>(in_[0]);
            in_.remove_prefix(1);
            if (shift == 63 && byte > 1) {
                return false;  // overflows 64 bits
            }
            result |= static_cast<uint64_t>(byte & 0x7f) << shift;
            if ((byte & 0x80) == 0) {
                *v = result;
                return true;
            }
        }
        return false;
    }
    bool GetBytes(std::string_view* s) {
        uint64_t n;
        if (!GetVarint(&n) || n > in_.size()) {
            return false;
        }
        *s = in_.substr(0, n);
        in_.remove_prefix(n);
        return true;
    }
    bool GetView(size_t n, std::string_view* s) {
        if (n > in_.size()) {
            return false;
        }
        *s = in_.substr(0, n);
        in_.remove_prefix(n);
        return true;
    }
    // Everything left (bytes that run to the end of a message).
    void GetRest(std::string_view* s) {
        *s = in_;
        in_ = {};
    }
    bool GetRaw(void* p, size_t n) {
        if (n > in_.size()) {
            return false;
        }
        std::memcpy(p, in_.data(), n);
        in_.remove_prefix(n);
        return true;
    }
    bool GetBigEndian64(uint64_t* v) {
        if (in_.size() < 8) {
            return false;
        }
        uint64_t r = 0;
        for (int i = 0; i < 8; ++i) {
            r = (r << 8) | static_cast<uint8_t>(in_[i]);
        }
        in_.remove_prefix(8);
        *v = r;
        return true;
    }

    bool empty() const { return in_.empty(); }
    size_t remaining() const { return in_.size(); }
    std::string_view rest() const { return in_; }

private:
    std::string_view in_;
};

}  // namespace zerohop
