#include "zerohop/status.h"

#include <errno.h>

#include "absl/strings/str_format.h"

namespace zerohop {

int StatusToErrno(const absl::Status& status) {
    switch (status.code()) {
        case absl::StatusCode::kOk: return 0;
        case absl::StatusCode::kNotFound: return ENOENT;
        case absl::StatusCode::kAlreadyExists: return EEXIST;
        case absl::StatusCode::kFailedPrecondition: return ENOTEMPTY;
        case absl::StatusCode::kInvalidArgument: return EINVAL;
        case absl::StatusCode::kPermissionDenied: return EACCES;
        case absl::StatusCode::kResourceExhausted: return ENOSPC;
        case absl::StatusCode::kUnavailable: return EAGAIN;
        case absl::StatusCode::kDeadlineExceeded: return ETIMEDOUT;
        case absl::StatusCode::kUnimplemented: return ENOSYS;
        case absl::StatusCode::kOutOfRange: return ERANGE;
        case absl::StatusCode::kDataLoss: return EIO;
        default: return EIO;
    }
}

absl::Status ConditionFailedError(std::string_view path) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: condition is false; nothing was changed (read it again and retry)", path));
}

absl::Status PathNotFoundError(std::string_view path) {
    return absl::NotFoundError(absl::StrFormat("%s: no such object or directory", path));
}

absl::Status ParentNotFoundError(std::string_view path) {
    return absl::NotFoundError(
        absl::StrFormat("%s: parent directory does not exist; create it with mkdir first", path));
}

}  // namespace zerohop
