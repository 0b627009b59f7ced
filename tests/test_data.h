#pragma once
// What the store tests share: a scratch directory that goes with the test, and bytes that
// differ by seed and position (so a misplaced or stale range shows).

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace zerohop::testing {

class TempDir {
public:
    explicit TempDir(const std::string& prefix = "zh-test") {
        std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
        path_ = mkdtemp(tmpl.data());
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// `n` bytes of an xorshift sequence seeded by `seed`.
inline std::string Pattern(size_t n, uint64_t seed) {
    std::string s(n, '\0');
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s[i] = static_cast<char>(x);
    }
    return s;
}

}  // namespace zerohop::testing
