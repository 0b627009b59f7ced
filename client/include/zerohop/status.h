#pragma once
// The error model: absl::Status codes, one meaning each, everywhere.
//
//   NotFound            the path (or a parent) does not exist
//   AlreadyExists       create/mkdir/rename-noreplace onto an existing entry
//   FailedPrecondition  a condition expression was false; a directory is not empty;
//                       the operation does not fit the entry's type
//   InvalidArgument     bad path, bad expression (with its byte position), bad value
//   PermissionDenied    the access key lacks the right for this container
//   ResourceExhausted   disk full, quota, in-flight limit
//   Unavailable         try again (daemon restarting, peer down)
//   DeadlineExceeded, Unimplemented, DataLoss (corruption found), Internal
//
// Messages name the path and say what to do. StatusToErrno is the one map used by FUSE.

#include "absl/status/status.h"

namespace zerohop {

// The errno a POSIX caller should see for `status` (0 for OK): ENOTEMPTY, ENOTDIR, EISDIR
// for the FailedPrecondition rules they name, ENAMETOOLONG for a name over the limit,
// EXDEV for a rename across backends.
int StatusToErrno(const absl::Status& status);

// Whether `status` is a false condition (ConditionFailedError), not another broken rule.
bool IsConditionFailed(const absl::Status& status);

// Conventional errors, so that every backend words them alike.
absl::Status ConditionFailedError(std::string_view path);
absl::Status PathNotFoundError(std::string_view path);
absl::Status ParentNotFoundError(std::string_view path);

}  // namespace zerohop
