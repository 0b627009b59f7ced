#include "rdma/verbs.h"

namespace zerohop::peer::verbs {

std::string_view WcStatusName(WcStatus s) {
    switch (s) {
        case WcStatus::kSuccess: return "success";
        case WcStatus::kLocalLengthError: return "local length error";
        case WcStatus::kRemoteAccessError: return "remote access error";
        case WcStatus::kRemoteInvalidRequest: return "remote invalid request";
        case WcStatus::kRnrRetryExceeded: return "receiver not ready, retries exceeded";
        case WcStatus::kTransportRetryExceeded: return "transport retries exceeded";
        case WcStatus::kFlushed: return "flushed";
        case WcStatus::kOtherError: return "device error";
    }
    return "unknown";
}

}  // namespace zerohop::peer::verbs
