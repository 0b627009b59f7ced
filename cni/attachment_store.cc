#include "attachment_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace zerohop::cni {
namespace {

namespace fs = std::filesystem;

absl::Status Io(std::string_view what, const std::string& path, int err) {
    return CniError(kIoFailure, absl::StrFormat("%s %s: %s", what, path, strerror(err)));
}

absl::Status FsyncDir(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return Io("open", dir, errno);
    }
    int r = ::fsync(fd);
    int err = errno;
    ::close(fd);
    return r == 0 ? absl::OkStatus() : Io("fsync", dir, err);
}

}  // namespace

FileLock::~FileLock() {
    if (fd_ >= 0) {
        if (remove_) {
            ::unlink(path_.c_str());  // still holding it: a waiter sees the inode change and retries
        }
        ::close(fd_);
    }
}

absl::StatusOr<AttachmentStore> AttachmentStore::Open(const std::string& dir) {
    for (const char* sub : {"attachments", "locks"}) {
        std::error_code ec;
        fs::create_directories(fs::path(dir) / sub, ec);
        if (ec) {
            return CniError(kIoFailure, absl::StrFormat("state directory %s/%s: %s", dir, sub, ec.message()));
        }
    }
    return AttachmentStore(dir);
}

absl::StatusOr<FileLock> AttachmentStore::Lock(const std::string& name) {
    std::string path = dir_ + "/locks/" + name;
    while (true) {
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            return Io("open lock", path, errno);
        }
        FileLock lock(fd, path);
        while (::flock(fd, LOCK_EX) != 0) {
            if (errno != EINTR) {
                return Io("flock", path, errno);
            }
        }
        // The previous holder may have removed the file after we opened it: then this lock
        // protects nothing, and the current file is the one to lock.
        struct stat held = {}, now = {};
        if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &now) == 0 && held.st_ino == now.st_ino &&
            held.st_dev == now.st_dev) {
            return lock;
        }
    }
}

std::string AttachmentStore::RecordPath(const Attachment& a) const {
    return dir_ + "/attachments/" + a.container_id + ":" + a.ifname + ".json";
}

absl::StatusOr<std::optional<Json>> AttachmentStore::Load(const Attachment& a) {
    std::string path = RecordPath(a);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return std::optional<Json>();
        }
        return Io("open", path, errno);
    }
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        text.append(buf, static_cast<size_t>(std::max<ssize_t>(n, 0)));
    }
    int err = errno;
    ::close(fd);
    if (n < 0) {
        return Io("read", path, err);
    }
    Json j = Json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        return CniError(kIoFailure, absl::StrFormat("state record %s is damaged (not a JSON object)", path));
    }
    return std::optional<Json>(std::move(j));
}

absl::Status AttachmentStore::Save(const Attachment& a, const Json& record) {
    std::string path = RecordPath(a);
    std::string tmp = path + ".tmp";
    std::string text = record.dump(2);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return Io("create", tmp, errno);
    }
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int err = n < 0 ? errno : ENOSPC;
            ::close(fd);
            ::unlink(tmp.c_str());
            return Io("write", tmp, err);
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
        int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return Io("fsync", tmp, err);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return Io("rename", tmp, err);
    }
    return FsyncDir(dir_ + "/attachments");
}

absl::Status AttachmentStore::Remove(const Attachment& a) {
    std::string path = RecordPath(a);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return Io("remove", path, errno);
    }
    return FsyncDir(dir_ + "/attachments");
}

absl::StatusOr<std::vector<std::pair<Attachment, Json>>> AttachmentStore::List() {
    std::vector<std::pair<Attachment, Json>> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir_ + "/attachments", ec), end; !ec && it != end; it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (!absl::EndsWith(name, ".json")) {
            continue;  // a temporary file of a Save cut short
        }
        name.resize(name.size() - 5);
        size_t colon = name.rfind(':');
        if (colon == std::string::npos) {
            continue;
        }
        Attachment a{name.substr(0, colon), name.substr(colon + 1)};
        ZH_ASSIGN_OR_RETURN(auto record, Load(a));
        if (record) {
            out.emplace_back(std::move(a), std::move(*record));
        }
    }
    if (ec) {
        return CniError(kIoFailure, absl::StrFormat("list %s/attachments: %s", dir_, ec.message()));
    }
    return out;
}

}  // namespace zerohop::cni
