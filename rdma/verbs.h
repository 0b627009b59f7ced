#pragma once
// The seam under the RDMA transport: the few verbs it uses (memory registration, queue
// pairs, posting receives, sends and RDMA writes, polling completions), as our own small
// interface. Two implementations: rdma-core's libibverbs on a real device (ibv.h), and a
// simulated reliable-connected device in this process (sim_verbs.h) that behaves like one,
// for the machines (CI among them) that have none. Nothing above this header includes a
// verbs header.
//
// The model is RC's: a queue pair is connected to exactly one remote queue pair; what one
// side posts is executed in order; a SEND consumes the receive the other side posted first
// (none posted: receiver-not-ready, retried, then an error); an RDMA WRITE lands in the
// other side's registered memory named by (address, rkey) and checked against that region's
// bounds and rights, consuming a receive only when it carries an immediate. Any error moves
// both queue pairs to the error state: every work request still posted completes as
// flushed, and nothing more can be posted.
//
//   auto mr = device->Register(buf, len, kLocalWrite | kRemoteWrite);
//   qp->PostRecv(1, *mr, 0, 4096);
//   qp->PostSend(2, *mr, 4096, 64);
//   WorkCompletion wc[16];
//   int n = qp->Poll(wc, 16);        // or wait for completion_fd() to be readable

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zerohop::peer::verbs {

enum Access : uint32_t {
    kLocalWrite = 1 << 0,
    kRemoteWrite = 1 << 1,
    kRemoteRead = 1 << 2,
};

struct MemoryRegion {
    char* addr = nullptr;
    size_t length = 0;
    uint32_t lkey = 0;
    uint32_t rkey = 0;
    uint32_t access = 0;
};

enum class WcOpcode { kSend, kRecv, kRdmaWrite, kRecvWithImm };

// The statuses a completion can carry (ibv_wc_status's, those RC gives).
enum class WcStatus {
    kSuccess,
    kLocalLengthError,      // a message longer than the receive it landed in
    kRemoteAccessError,     // an RDMA write outside the region, a wrong rkey, or no right
    kRemoteInvalidRequest,  // a message longer than the receive it was sent to
    kRnrRetryExceeded,      // the other side never posted a receive in time
    kTransportRetryExceeded,  // the other side never acknowledged (dead, or the link cut)
    kFlushed,               // still posted when the queue pair went to the error state
    kOtherError,            // any other failure a real device reports (its name is logged)
};
std::string_view WcStatusName(WcStatus s);

struct WorkCompletion {
    uint64_t wr_id = 0;
    WcOpcode opcode = WcOpcode::kSend;
    WcStatus status = WcStatus::kSuccess;
    uint32_t byte_len = 0;            // received bytes (receives)
    std::optional<uint32_t> imm;      // an immediate that came with a send or write
};

enum class QpState { kReadyToSend, kError };

class QueuePair {
public:
    virtual ~QueuePair() = default;
    // Where the next message (or write with immediate) from the other side lands.
    virtual absl::Status PostRecv(uint64_t wr_id, const MemoryRegion& mr, size_t offset, size_t length) = 0;
    // `length` bytes at `offset` of `mr` to the other side's next receive; inline: the
    // bytes are copied at post time (small messages), so the memory is free at once.
    virtual absl::Status PostSend(uint64_t wr_id, const MemoryRegion& mr, size_t offset, size_t length,
                                  std::optional<uint32_t> imm = std::nullopt, bool inline_data = false) = 0;
    // `length` bytes at `offset` of `mr` into the other side's memory at `remote_addr`
    // (rkey `rkey`); with an immediate, the other side's next receive completes with it.
    virtual absl::Status PostWrite(uint64_t wr_id, const MemoryRegion& mr, size_t offset, size_t length,
                                   uint64_t remote_addr, uint32_t rkey, std::optional<uint32_t> imm = std::nullopt) = 0;
    // Completions of both directions, at most `max`; 0 when none is ready.
    virtual int Poll(WorkCompletion* out, int max) = 0;
    // Readable while completions wait (the completion channel): a loop waits on it.
    virtual int completion_fd() const = 0;
    virtual QpState state() const = 0;
};

class Device {
public:
    virtual ~Device() = default;
    virtual std::string_view name() const = 0;
    // Registers [addr, addr + length) with `access`; keys the other side uses to reach it.
    virtual absl::StatusOr<MemoryRegion> Register(char* addr, size_t length, uint32_t access) = 0;
    virtual void Deregister(const MemoryRegion& mr) = 0;
};

}  // namespace zerohop::peer::verbs
