#pragma once
// The mount operations zerohop-csi needs, on the kernel directly (no mount(8)).
//
//   ZH_RETURN_IF_ERROR(BindMount(fuse_mountpoint, target, {.read_only = true}));
//   if (IsMountPoint(target)) ZH_RETURN_IF_ERROR(Unmount(target));

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zerohop::csi {

struct BindOptions {
    bool read_only = false;
    bool recursive = false;  // the mounts below `source` come along (MS_REC)
    bool no_exec = false;
    // Always: nosuid and nodev (a volume never carries privileges or devices into a pod).
};

// Binds `source` at `target` (a directory that exists), then applies `options`.
absl::Status BindMount(const std::string& source, const std::string& target, const BindOptions& options);

// Detaches whatever is mounted at `target`, with everything below it (lazily: a pod still
// using it keeps it until it lets go). Nothing mounted there: OK.
absl::Status Unmount(const std::string& target);

struct MountEntry {
    std::string mount_point;
    std::string fs_type;  // "fuse.zerohop", "tmpfs", ...
    std::string source;
};

// This process's mounts (/proc/self/mountinfo), escapes undone.
std::vector<MountEntry> ListMounts();
// Whether something is mounted exactly at `path`.
bool IsMountPoint(const std::string& path);

}  // namespace zerohop::csi
