// What zerohop-cni did for each attachment (container ID + interface), on disk, so that DEL
// and GC can undo it without prevResult and after a reboot; and the locks that keep
// parallel invocations apart.
//
//   <dir>/attachments/<container>:<ifname>.json   one record, replaced atomically
//   <dir>/locks/<name>                             flock(2) files, removed by their last holder
//
//   auto store = AttachmentStore::Open("/var/lib/cni/zerohop");
//   auto lock = store->Lock("pf-ens1f0");
//   store->Save({cid, "net1"}, record);
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "config.h"

namespace zerohop::cni {

// An exclusive flock on a file; released (and the file removed, when `remove` was asked) on
// destruction.
class FileLock {
public:
    FileLock(FileLock&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)), remove_(o.remove_) { o.fd_ = -1; }
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;
    ~FileLock();
    // Unlinks the lock file when released: for locks on things that are gone for good.
    void RemoveOnRelease() { remove_ = true; }

private:
    friend class AttachmentStore;
    FileLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    int fd_ = -1;
    std::string path_;
    bool remove_ = false;
};

class AttachmentStore {
public:
    static absl::StatusOr<AttachmentStore> Open(const std::string& dir);

    // Waits for the lock named `name` (letters, digits, '-', '_', '.', ':').
    absl::StatusOr<FileLock> Lock(const std::string& name);
    static std::string LockName(const Attachment& a) { return "att-" + a.container_id + ":" + a.ifname; }

    absl::StatusOr<std::optional<Json>> Load(const Attachment& a);
    absl::Status Save(const Attachment& a, const Json& record);  // durable when it returns
    absl::Status Remove(const Attachment& a);                    // OK if there is none
    absl::StatusOr<std::vector<std::pair<Attachment, Json>>> List();

private:
    explicit AttachmentStore(std::string dir) : dir_(std::move(dir)) {}
    std::string RecordPath(const Attachment& a) const;
    std::string dir_;
};

}  // namespace zerohop::cni
