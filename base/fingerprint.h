#pragma once
// 16 hex digits telling byte strings apart (64-bit FNV-1a): for names and for comparing
// arguments or keys without keeping them. Not a cryptographic hash: it hides nothing from
// whoever can guess the input.
//
//   std::string id = "t-" + Fingerprint(target_path);

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_format.h"

namespace zerohop {

inline std::string Fingerprint(std::string_view bytes) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : bytes) {
        h = (h ^ c) * 1099511628211ull;
    }
    return absl::StrFormat("%016x", h);
}

}  // namespace zerohop
