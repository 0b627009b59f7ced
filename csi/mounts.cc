#include "mounts.h"

#include <errno.h>
#include <sys/mount.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"

namespace zerohop::csi {

namespace {

absl::Status Errno(const char* what, const std::string& path) {
    int e = errno;
    std::string message = absl::StrFormat("%s %s: %s", what, path, strerror(e));
    return e == ENOENT ? absl::NotFoundError(message) : absl::InternalError(message);
}

// mountinfo writes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3') {
            out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
            i += 3;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

}  // namespace

absl::Status BindMount(const std::string& source, const std::string& target, const BindOptions& options) {
    unsigned long flags = MS_BIND | (options.recursive ? MS_REC : 0);
    if (::mount(source.c_str(), target.c_str(), nullptr, flags, nullptr) != 0) {
        return Errno("bind mount onto", target);
    }
    // A bind mount takes its flags only from a remount of the bind.
    unsigned long again = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (options.read_only ? MS_RDONLY : 0) |
                          (options.no_exec ? MS_NOEXEC : 0);
    if (::mount(nullptr, target.c_str(), nullptr, again, nullptr) != 0) {
        absl::Status s = Errno("remount", target);
        ::umount2(target.c_str(), MNT_DETACH);
        return s;
    }
    return absl::OkStatus();
}

absl::Status Unmount(const std::string& target) {
    if (::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL && errno != ENOENT) {
        return Errno("unmount", target);
    }
    return absl::OkStatus();
}

std::vector<MountEntry> ListMounts() {
    std::vector<MountEntry> out;
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        std::istringstream fields(line);
        std::string id, parent, dev, root, mount_point, options, field;
        fields >> id >> parent >> dev >> root >> mount_point >> options;
        while (fields >> field && field != "-") {
        }
        MountEntry e;
        e.mount_point = Unescape(mount_point);
        fields >> e.fs_type >> e.source;
        e.source = Unescape(e.source);
        out.push_back(std::move(e));
    }
    return out;
}

bool IsMountPoint(const std::string& path) {
    for (const MountEntry& e : ListMounts()) {
        if (e.mount_point == path) {
            return true;
        }
    }
    return false;
}

}  // namespace zerohop::csi
