#include "daemon_link.h"

#include <deque>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "shmring/unix_socket.h"

namespace zerohop::csi {

namespace {

ClientOptions Small(std::string socket, std::string key) {
    ClientOptions o;
    o.socket_path = std::move(socket);
    o.access_key = std::move(key);
    o.submit_entries = 64;
    o.complete_entries = 64;
    o.client_bytes = 1 << 20;
    o.daemon_bytes = 1 << 20;
    o.spin = absl::ZeroDuration();  // the plugin is not latency-bound: never burn a core
    o.timeout = absl::Seconds(20);
    o.reconnect_timeout = absl::Seconds(2);
    return o;
}

}  // namespace

absl::StatusOr<std::shared_ptr<Client>> DaemonLink::Admin() {
    absl::MutexLock lock(&mu_);
    if (admin_ == nullptr) {
        if (admin_key_.empty()) {
            return absl::FailedPreconditionError("no admin key: give --admin-key-file");
        }
        auto c = Client::Connect(Small(socket_, admin_key_));
        if (!c.ok()) {
            return absl::UnavailableError(absl::StrCat("zerohopd: ", c.status().message()));
        }
        admin_ = std::move(*c);
    }
    return admin_;
}

absl::StatusOr<std::unique_ptr<Client>> DaemonLink::Keyed(const std::string& key) const {
    auto c = Client::Connect(Small(socket_, key));
    if (!c.ok() && c.status().code() != absl::StatusCode::kPermissionDenied) {
        return absl::UnavailableError(absl::StrCat("zerohopd: ", c.status().message()));
    }
    return c;
}

absl::Status DaemonLink::Probe() {
    if (admin_key_.empty()) {
        // A controller has no key of its own: zerohopd accepting a connection is enough
        // (one that leaves without a hello is not counted as refused).
        auto c = shmring::ConnectUnix(socket_);
        return c.ok() ? absl::OkStatus() : absl::UnavailableError(absl::StrCat("zerohopd: ", c.status().message()));
    }
    ZH_ASSIGN_OR_RETURN(auto admin, Admin());
    absl::Status s = admin->Status().status();
    if (s.code() == absl::StatusCode::kUnavailable) {
        absl::MutexLock lock(&mu_);
        admin_.reset();  // dial afresh next time
    }
    return s;
}

absl::StatusOr<PublishedVolume> DaemonLink::Publish(const PublishVolumeRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto admin, Admin());
    return admin->PublishVolume(req);
}

absl::Status DaemonLink::Unpublish(const std::string& scope_id) {
    ZH_ASSIGN_OR_RETURN(auto admin, Admin());
    return admin->UnpublishVolume({scope_id});
}

absl::Status DaemonLink::MakeDirectories(const std::string& key, const Path& root) {
    ZH_ASSIGN_OR_RETURN(auto c, Keyed(key));
    Path at = *Path().Child(root.container());
    for (size_t i = 1; i < root.depth(); ++i) {
        at = *at.Child(root.component(i));
        auto made = c->Mkdir({.path = at, .mode = 0777});
        if (!made.ok() && made.status().code() != absl::StatusCode::kAlreadyExists) {
            return made.status();
        }
    }
    return absl::OkStatus();
}

absl::StatusOr<ObjectInfo> DaemonLink::Stat(const std::string& key, const Path& root) {
    ZH_ASSIGN_OR_RETURN(auto c, Keyed(key));
    return c->Stat(root);
}

absl::Status DaemonLink::RemoveTree(const std::string& key, const Path& root) {
    ZH_ASSIGN_OR_RETURN(auto c, Keyed(key));
    // Depth first: a directory's entries, then the directory.
    std::vector<std::pair<Path, bool>> stack = {{root, false}};
    while (!stack.empty()) {
        auto [path, listed] = stack.back();
        if (listed) {
            stack.pop_back();
            absl::Status s = c->Rmdir(path);
            if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
                return s;
            }
            continue;
        }
        auto info = c->Stat(path);
        if (!info.ok()) {
            stack.pop_back();
            if (info.status().code() == absl::StatusCode::kNotFound) {
                continue;
            }
            return info.status();
        }
        if (info->type != ObjectType::kDirectory) {
            stack.pop_back();
            absl::Status s = info->type == ObjectType::kStream ? c->DeleteStream(path) : c->Delete({.path = path});
            if (!s.ok() && s.code() != absl::StatusCode::kNotFound) {
                return s;
            }
            continue;
        }
        stack.back().second = true;
        ListRequest list{.path = path};
        do {
            ZH_ASSIGN_OR_RETURN(ListResult page, c->List(list));
            for (const DirEntry& e : page.entries) {
                stack.emplace_back(*path.Child(e.name), false);
            }
            list.marker = page.next_marker;
            if (!page.truncated) {
                break;
            }
        } while (true);
    }
    return absl::OkStatus();
}

absl::StatusOr<Usage> DaemonLink::UsageThrough(const std::string& volume_socket, const std::string& container,
                                               int64_t max_entries) {
    ClientOptions o = Small(volume_socket, "");
    o.reconnect_timeout = absl::ZeroDuration();
    auto c = Client::Connect(o);
    if (!c.ok()) {
        return absl::UnavailableError(absl::StrCat("the volume's socket: ", c.status().message()));
    }
    Usage usage;
    std::deque<Path> dirs = {*Path().Child(container)};
    while (!dirs.empty()) {
        ListRequest list{.path = dirs.front()};
        dirs.pop_front();
        do {
            ZH_ASSIGN_OR_RETURN(ListResult page, (*c)->List(list));
            for (const DirEntry& e : page.entries) {
                ++usage.entries;
                if (e.info.type == ObjectType::kDirectory) {
                    dirs.push_back(*list.path.Child(e.name));
                } else if (e.info.type == ObjectType::kObject) {
                    usage.bytes += static_cast<int64_t>(e.info.size);
                }
                if (usage.entries >= max_entries) {
                    usage.complete = false;
                    return usage;
                }
            }
            list.marker = page.next_marker;
            if (!page.truncated) {
                break;
            }
        } while (true);
    }
    return usage;
}

}  // namespace zerohop::csi
