#include "wire/protocol.h"

#include "absl/strings/str_format.h"

namespace zerohop::protocol::layout {

absl::Status MalformedBody(size_t bytes) {
    return absl::InvalidArgumentError(absl::StrFormat("malformed message body (%d bytes)", bytes));
}

absl::Status TrailingBytes(size_t bytes) {
    return absl::InvalidArgumentError(absl::StrFormat("malformed message body: %d trailing bytes", bytes));
}

}  // namespace zerohop::protocol::layout
