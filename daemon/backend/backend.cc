#include "backend/backend.h"

#include <algorithm>
#include <cstring>

namespace zerohop {

absl::StatusOr<size_t> StringSource::Read(char* buf, size_t capacity) {
    size_t n = std::min(capacity, data_.size());
    if (n != 0) {
        std::memcpy(buf, data_.data(), n);
    }
    data_.remove_prefix(n);
    return n;
}

}  // namespace zerohop
