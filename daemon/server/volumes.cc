#include "server/volumes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/fingerprint.h"
#include "base/status_macros.h"
#include "shmring/unix_socket.h"
#include "wire/protocol.h"

namespace zerohop {

namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
    return absl::InternalError(absl::StrFormat("%s %s: %s", std::string(what), path, strerror(errno)));
}

// mkdir -p, each level with `mode`.
absl::Status MakeDirs(const std::string& path, mode_t mode) {
    for (size_t at = 1; at <= path.size(); ++at) {
        if (at == path.size() || path[at] == '/') {
            std::string dir = path.substr(0, at);
            if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) {
                return Errno("mkdir", dir);
            }
        }
    }
    return absl::OkStatus();
}

// Writes `bytes` to `path` atomically (a temporary file, renamed), readable by root only. No
// fsync: a record must outlive zerohopd's process, not the node (whose reboot takes the
// pods and their volumes with it).
absl::Status WriteAtomically(const std::string& path, const std::string& bytes) {
    std::string tmp = path + ".tmp";
    shmring::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) {
        return Errno("create", tmp);
    }
    if (::write(fd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
        return Errno("write", tmp);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        return Errno("rename", tmp);
    }
    return absl::OkStatus();
}

bool SameScope(const PublishVolumeRequest& a, const PublishVolumeRequest& b) {
    return protocol::Encode(a) == protocol::Encode(b);
}

}  // namespace

absl::StatusOr<Path> Scope::Map(const Path& path) const {
    if (path.container() != root.container()) {
        return absl::NotFoundError(
            absl::StrFormat("%s: this volume holds only container \"%s\"", path.str(), std::string(root.container())));
    }
    // /<container>/<rest> -> <root>/<rest>
    std::string_view rest = std::string_view(path.str()).substr(1 + path.container().size());
    return Path::Parse(root.str() + std::string(rest));
}

std::string Scope::Unmap(std::string_view text) const {
    const std::string& from = root.str();
    std::string to = "/" + std::string(root.container());
    std::string out;
    size_t at = 0;
    for (size_t hit; (hit = text.find(from, at)) != std::string_view::npos; at = hit + from.size()) {
        size_t end = hit + from.size();
        bool whole = end == text.size() || text[end] == '/' || text[end] == '"' || text[end] == ':' ||
                     text[end] == ' ' || text[end] == '\'';
        out.append(text.substr(at, hit - at));
        out.append(whole ? to : from);
    }
    out.append(text.substr(at));
    return out;
}

VolumeSockets::VolumeSockets(std::string runtime_dir)
    : runtime_dir_(std::move(runtime_dir)), changed_(shmring::UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))) {}

VolumeSockets::~VolumeSockets() {
    // The sockets stay on disk: a restarted zerohopd listens on them again.
    absl::MutexLock lock(&mu_);
    scopes_.clear();
}

absl::Status VolumeSockets::ValidateId(const std::string& id) {
    if (id.empty() || id.size() > 64 || id == "." || id == ".." ||
        id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
            std::string::npos) {
        return absl::InvalidArgumentError(absl::StrFormat("scope id \"%s\": expected 1..64 of A-Z a-z 0-9 . _ -", id));
    }
    return absl::OkStatus();
}

absl::StatusOr<VolumeSockets::Listening> VolumeSockets::Listen(std::shared_ptr<const Scope> scope) {
    std::string dir = Directory(scope->id);
    ZH_RETURN_IF_ERROR(MakeDirs(dir, 0755));
    ::chmod(dir.c_str(), 0755);  // pods of any uid reach the socket in it
    // Mode 0666: the scope decides what its sessions may do, not their uid.
    ZH_ASSIGN_OR_RETURN(shmring::UniqueFd fd, shmring::ListenUnix(dir + "/zerohop.sock", 0666, 256));
    return Listening{std::move(scope), std::move(fd)};
}

absl::StatusOr<PublishedVolume> VolumeSockets::Publish(const PublishVolumeRequest& req) {
    ZH_RETURN_IF_ERROR(ValidateId(req.scope_id));
    PublishVolumeRequest record = req;
    record.access_key = zerohop::Fingerprint(req.access_key);
    PublishedVolume out{Directory(req.scope_id), Directory(req.scope_id) + "/zerohop.sock"};
    absl::MutexLock lock(&mu_);
    if (auto it = scopes_.find(req.scope_id); it != scopes_.end()) {
        if (!SameScope(it->second.scope->published, record)) {
            return absl::AlreadyExistsError(absl::StrFormat("scope %s is published with other arguments (root %s, %s)",
                                                            req.scope_id, it->second.scope->root.str(),
                                                            it->second.scope->read_only ? "read-only" : "read-write"));
        }
        return out;
    }
    auto scope = std::make_shared<Scope>();
    scope->id = req.scope_id;
    scope->root = req.root;
    scope->read_only = req.read_only;
    scope->pod = req.pod_name.empty() ? "" : absl::StrCat(req.pod_namespace, "/", req.pod_name);
    scope->published = record;
    scope->credential.containers[std::string(req.root.container())] =
        req.read_only ? kRightRead : (kRightRead | kRightWrite);
    ZH_RETURN_IF_ERROR(MakeDirs(runtime_dir_ + "/scopes", 0700));
    ZH_ASSIGN_OR_RETURN(Listening listening, Listen(scope));
    ZH_RETURN_IF_ERROR(WriteAtomically(RecordPath(req.scope_id), protocol::Encode(record)));
    scopes_.emplace(req.scope_id, std::move(listening));
    changed_.Signal();
    Log(LogLevel::kInfo, "volume published", "scope", req.scope_id, "root", req.root.str(), "read_only",
        req.read_only ? "true" : "false", "pod", scope->pod);
    return out;
}

bool VolumeSockets::Unpublish(const std::string& id) {
    if (!ValidateId(id).ok()) {
        return false;
    }
    absl::MutexLock lock(&mu_);
    auto it = scopes_.find(id);
    if (it == scopes_.end()) {
        return false;
    }
    it->second.scope->unpublished.store(true, std::memory_order_release);
    scopes_.erase(it);  // closes the listening socket
    std::string dir = Directory(id);
    ::unlink((dir + "/zerohop.sock").c_str());
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
        Log(LogLevel::kWarning, "volume directory left behind", "dir", dir, "error", strerror(errno));
    }
    ::unlink(RecordPath(id).c_str());
    changed_.Signal();
    Log(LogLevel::kInfo, "volume unpublished", "scope", id);
    return true;
}

void VolumeSockets::Restore(const std::function<const CredentialConfig*(const std::string&)>& key_of) {
    std::string dir = runtime_dir_ + "/scopes";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        return;  // nothing published yet
    }
    std::vector<std::string> ids;
    while (struct dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (ValidateId(name).ok() && name != "." && name != ".." && name.find(".tmp") == std::string::npos) {
            ids.push_back(name);
        }
    }
    ::closedir(d);
    for (const std::string& id : ids) {
        std::ifstream in(RecordPath(id), std::ios::binary);
        std::stringstream bytes;
        bytes << in.rdbuf();
        auto record = protocol::Decode<PublishVolumeRequest>(bytes.str());
        const CredentialConfig* key = record.ok() ? key_of(record->access_key) : nullptr;
        std::string container = record.ok() ? std::string(record->root.container()) : "";
        uint32_t need = record.ok() && record->read_only ? kRightRead : (kRightRead | kRightWrite);
        if (key == nullptr || !key->containers.count(container) || (key->containers.at(container) & need) != need) {
            Log(LogLevel::kWarning,
                "a volume's scope is dropped: its record is damaged or its key no longer "
                "grants it",
                "scope", id);
            ::unlink(RecordPath(id).c_str());
            ::unlink((Directory(id) + "/zerohop.sock").c_str());
            continue;
        }
        record->access_key = "";  // (Publish fingerprints it again)
        PublishVolumeRequest again = *record;
        again.access_key = key->key;
        auto published = Publish(again);
        if (!published.ok()) {
            Log(LogLevel::kWarning, "a volume's socket could not be made again", "scope", id, "error",
                std::string(published.status().message()));
        }
    }
}

std::vector<std::pair<int, std::shared_ptr<const Scope>>> VolumeSockets::Listeners() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::pair<int, std::shared_ptr<const Scope>>> out;
    out.reserve(scopes_.size());
    for (const auto& [id, l] : scopes_) {
        out.emplace_back(l.fd.get(), l.scope);
    }
    return out;
}

std::string VolumeSockets::RenderMetrics() const {
    std::string out = "# TYPE zerohop_volume_sessions_open gauge\n";
    absl::MutexLock lock(&mu_);
    for (const auto& [id, l] : scopes_) {
        absl::StrAppendFormat(&out, "zerohop_volume_sessions_open{volume=\"%s\",pod=\"%s\"} %d\n", id, l.scope->pod,
                              l.scope->sessions.load());
    }
    return out;
}

}  // namespace zerohop
