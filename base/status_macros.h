#pragma once
// Status propagation without the boilerplate: return an error at once, or take the value
// of a StatusOr and go on.
//
//   absl::StatusOr<Item> GetItem(const GetItemRequest& req) {
//       ZH_ASSIGN_OR_RETURN(Location loc, Locate(req.path));
//       ZH_RETURN_IF_ERROR(CheckCondition(req.path, req.condition, attrs, &info));
//       ...
//   }
//
// Header-only, abseil only: every module may use it (shmring, client, daemon, fuse, cni,
// tools). Where an error must go to a callback instead of being returned, write it out.

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status); returns it from the enclosing function unless OK.
#define ZH_RETURN_IF_ERROR(expr)                                     \
    do {                                                             \
        if (::absl::Status zh_status_ = (expr); !zh_status_.ok()) { \
            return zh_status_;                                       \
        }                                                            \
    } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status from the enclosing function
// unless OK, else moves its value into `lhs` (a declaration such as `auto x` or an lvalue).
#define ZH_ASSIGN_OR_RETURN(lhs, rexpr) \
    ZH_ASSIGN_OR_RETURN_IMPL_(ZH_STATUS_CONCAT_(zh_statusor_, __LINE__), lhs, rexpr)

#define ZH_STATUS_CONCAT_INNER_(a, b) a##b
#define ZH_STATUS_CONCAT_(a, b) ZH_STATUS_CONCAT_INNER_(a, b)
#define ZH_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
    auto statusor = (rexpr);                            \
    if (!statusor.ok()) {                               \
        return std::move(statusor).status();            \
    }                                                   \
    lhs = *std::move(statusor)
