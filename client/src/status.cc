#include "zerohop/status.h"

#include <errno.h>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"

namespace zerohop {

int StatusToErrno(const absl::Status& status) {
    absl::string_view m = status.message();
    switch (status.code()) {
        case absl::StatusCode::kOk: return 0;
        case absl::StatusCode::kNotFound: return ENOENT;
        case absl::StatusCode::kAlreadyExists: return EEXIST;
        case absl::StatusCode::kFailedPrecondition:
            // Which rule was broken is in the message (the backends word them alike).
            if (absl::StrContains(m, "not empty")) {
                return ENOTEMPTY;
            }
            if (absl::StrContains(m, "cannot replace a directory")) {
                return EISDIR;
            }
            if (absl::StrContains(m, "with a directory") || absl::StrContains(m, "not a directory")) {
                return ENOTDIR;
            }
            if (absl::StrContains(m, "is a directory")) {
                return EISDIR;
            }
            return EPERM;
        case absl::StatusCode::kInvalidArgument:
            return absl::StrContains(m, "the limit is") ? ENAMETOOLONG : EINVAL;
        case absl::StatusCode::kPermissionDenied: return EACCES;
        case absl::StatusCode::kResourceExhausted: return ENOSPC;
        case absl::StatusCode::kUnavailable: return EAGAIN;
        case absl::StatusCode::kDeadlineExceeded: return ETIMEDOUT;
        case absl::StatusCode::kUnimplemented: return absl::StrContains(m, "different backends") ? EXDEV : ENOSYS;
        case absl::StatusCode::kOutOfRange: return EFBIG;
        case absl::StatusCode::kDataLoss: return EIO;
        default: return EIO;
    }
}

bool IsConditionFailed(const absl::Status& status) {
    return absl::IsFailedPrecondition(status) && absl::StrContains(status.message(), "condition is false");
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
