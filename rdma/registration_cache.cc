#include "rdma/registration_cache.h"

#include <utility>

namespace zerohop::peer {

RegistrationCache::~RegistrationCache() {
    for (auto& [base, e] : entries_) {
        device_->Deregister(e.mr);
    }
}

absl::StatusOr<verbs::MemoryRegion> RegistrationCache::Acquire(char* base, size_t size, uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(base);
    if (it != entries_.end() && (it->second.forgotten || it->second.mr.length != size || it->second.id != id)) {
        // Another mapping at the same address: never reach its pages through the old one's
        // registration.
        if (it->second.users > 0) {
            return absl::UnavailableError("rdma: a region is registered anew while its old registration is in use");
        }
        Drop(base);
        it = entries_.end();
    }
    if (it != entries_.end()) {
        ++counts_.reused;
        Entry& e = it->second;
        ++e.users;
        lru_.splice(lru_.end(), lru_, e.lru);
        return e.mr;
    }
    auto mr = device_->Register(base, size, verbs::kLocalWrite | verbs::kRemoteWrite);
    if (!mr.ok()) {
        return mr.status();
    }
    ++counts_.registered;
    counts_.bytes += size;
    lru_.push_back(base);
    entries_[base] = Entry{.mr = *mr, .id = id, .users = 1, .lru = std::prev(lru_.end())};
    Evict();
    return *mr;
}

void RegistrationCache::Release(char* base) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(base);
    if (it == entries_.end() || it->second.users == 0) {
        return;
    }
    if (--it->second.users == 0 && it->second.forgotten) {
        Drop(base);
    }
    Evict();
}

void RegistrationCache::Forget(char* base) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(base);
    if (it == entries_.end()) {
        return;
    }
    if (it->second.users > 0) {
        it->second.forgotten = true;
    } else {
        Drop(base);
    }
}

RegistrationCache::Counts RegistrationCache::counts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_;
}

void RegistrationCache::Drop(char* base) {
    auto it = entries_.find(base);
    device_->Deregister(it->second.mr);
    counts_.bytes -= it->second.mr.length;
    lru_.erase(it->second.lru);
    entries_.erase(it);
}

void RegistrationCache::Evict() {
    for (auto at = lru_.begin(); counts_.bytes > max_bytes_ && at != lru_.end();) {
        char* base = *at++;
        if (entries_[base].users == 0) {
            Drop(base);
        }
    }
}

}  // namespace zerohop::peer
