#pragma once
// Lock-free rings of fixed-size slots in shared memory, written for a hostile peer.
//
// Each slot is an 8-byte sequence word followed by the payload (Vyukov's bounded queue):
// slot i starts with sequence i; a producer at position p may fill the slot whose sequence
// is p and publishes p + 1; a consumer at p may take a slot whose sequence is p + 1 and
// frees it with p + capacity. Indexes are masked with the capacity this side was given,
// never one read from shared memory, so a peer that scribbles on the ring can make it look
// empty, full or full of garbage, but never make this side read or write out of bounds or
// wait.
//
// Positions are either shared (in the segment, advanced by CAS: many threads of one side)
// or private (in this side's memory: the single daemon-side producer or consumer).
//
//   RingSlots sq(base + layout.offset, layout.capacity, kDescriptorSize);
//   sq.PushShared(&header->submit_tail, &descriptor);   // any client thread
//   sq.PopPrivate(&my_head, &copy);                     // the daemon, into private memory

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace shmring {

class RingSlots {
public:
    // `capacity` must be a power of two; `payload_size` a multiple of 8.
    RingSlots(char* slots, uint32_t capacity, uint32_t payload_size)
        : slots_(slots), mask_(capacity - 1), payload_(payload_size), stride_(8 + payload_size) {}

    static size_t BytesFor(uint32_t capacity, uint32_t payload_size) {
        return static_cast<size_t>(capacity) * (8 + payload_size);
    }
    static bool ValidShape(uint32_t capacity, uint32_t payload_size) {
        return capacity >= 2 && (capacity & (capacity - 1)) == 0 && payload_size % 8 == 0 && payload_size > 0;
    }

    // Only the creator, before the peer can see the ring.
    void Initialize() {
        for (uint64_t i = 0; i <= mask_; ++i) {
            Seq(i).store(i, std::memory_order_relaxed);
        }
        std::atomic_thread_fence(std::memory_order_release);
    }

    uint32_t capacity() const { return static_cast<uint32_t>(mask_ + 1); }
    uint32_t payload_size() const { return payload_; }

    // Many producers sharing `tail` (in shared memory). False when full.
    bool PushShared(uint64_t* tail, const void* payload) {
        std::atomic_ref<uint64_t> t(*tail);
        uint64_t pos = t.load(std::memory_order_relaxed);
        for (;;) {
            uint64_t seq = Seq(pos).load(std::memory_order_acquire);
            int64_t dif = static_cast<int64_t>(seq - pos);
            if (dif == 0) {
                if (t.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
                    break;
                }
            } else if (dif < 0) {
                return false;
            } else {
                pos = t.load(std::memory_order_relaxed);
            }
        }
        std::memcpy(Payload(pos), payload, payload_);
        Seq(pos).store(pos + 1, std::memory_order_release);
        return true;
    }

    // The only producer, with its position in private memory. False when full.
    bool PushPrivate(uint64_t* tail, const void* payload) {
        uint64_t pos = *tail;
        if (Seq(pos).load(std::memory_order_acquire) != pos) {
            return false;
        }
        std::memcpy(Payload(pos), payload, payload_);
        Seq(pos).store(pos + 1, std::memory_order_release);
        *tail = pos + 1;
        return true;
    }

    // Many consumers sharing `head` (in shared memory). False when empty.
    bool PopShared(uint64_t* head, void* out) {
        std::atomic_ref<uint64_t> h(*head);
        uint64_t pos = h.load(std::memory_order_relaxed);
        for (;;) {
            uint64_t seq = Seq(pos).load(std::memory_order_acquire);
            int64_t dif = static_cast<int64_t>(seq - (pos + 1));
            if (dif == 0) {
                if (h.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
                    break;
                }
            } else if (dif < 0) {
                return false;
            } else {
                pos = h.load(std::memory_order_relaxed);
            }
        }
        std::memcpy(out, Payload(pos), payload_);
        Seq(pos).store(pos + mask_ + 1, std::memory_order_release);
        return true;
    }

    // The only consumer, with its position in private memory; copies the payload out
    // before freeing the slot. False when empty.
    bool PopPrivate(uint64_t* head, void* out) {
        uint64_t pos = *head;
        if (Seq(pos).load(std::memory_order_acquire) != pos + 1) {
            return false;
        }
        std::memcpy(out, Payload(pos), payload_);
        Seq(pos).store(pos + mask_ + 1, std::memory_order_release);
        *head = pos + 1;
        return true;
    }

    // Whether a consumer at `head` would find a slot ready. Shared heads are read first.
    bool ReadyAt(uint64_t head) const {
        return Seq(head).load(std::memory_order_acquire) == head + 1;
    }
    bool ReadyShared(const uint64_t* head) const {
        return ReadyAt(std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(head)).load(std::memory_order_relaxed));
    }

private:
    std::atomic_ref<uint64_t> Seq(uint64_t pos) const {
        return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(slots_ + (pos & mask_) * stride_));
    }
    char* Payload(uint64_t pos) const { return slots_ + (pos & mask_) * stride_ + 8; }

    char* slots_;
    uint64_t mask_;
    uint32_t payload_;
    size_t stride_;
};

}  // namespace shmring
