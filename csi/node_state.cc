#include "node_state.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "shmring/unique_fd.h"

namespace zerohop::csi {

namespace {

using Json = nlohmann::json;

constexpr char kFile[] = "node-state.json";
constexpr int kVersion = 1;

Json ToJson(const TargetRecord& t) {
    return {{"volume_id", t.volume_id},
            {"digest", t.digest},
            {"container", t.spec.container},
            {"sub_path", t.spec.sub_path},
            {"fuse", t.spec.fuse},
            {"socket", t.spec.socket},
            {"create_sub_path", t.spec.create_sub_path},
            {"ephemeral", t.spec.ephemeral},
            {"read_only", t.read_only},
            {"pod",
             {{"namespace", t.pod.name_space},
              {"name", t.pod.name},
              {"uid", t.pod.uid},
              {"service_account", t.pod.service_account}}},
            {"scope_id", t.scope_id},
            {"scope_dir", t.scope_dir},
            {"instance", t.instance},
            {"created_target", t.created_target}};
}

TargetRecord TargetFrom(const Json& j) {
    TargetRecord t;
    t.volume_id = j.at("volume_id").get<std::string>();
    t.digest = j.at("digest").get<std::string>();
    t.spec.container = j.at("container").get<std::string>();
    t.spec.sub_path = j.at("sub_path").get<std::string>();
    t.spec.fuse = j.at("fuse").get<bool>();
    t.spec.socket = j.at("socket").get<bool>();
    t.spec.create_sub_path = j.at("create_sub_path").get<bool>();
    t.spec.ephemeral = j.at("ephemeral").get<bool>();
    t.read_only = j.at("read_only").get<bool>();
    const Json& pod = j.at("pod");
    t.pod = {pod.at("namespace").get<std::string>(), pod.at("name").get<std::string>(),
             pod.at("uid").get<std::string>(), pod.at("service_account").get<std::string>()};
    t.scope_id = j.at("scope_id").get<std::string>();
    t.scope_dir = j.at("scope_dir").get<std::string>();
    t.instance = j.at("instance").get<std::string>();
    t.created_target = j.at("created_target").get<bool>();
    return t;
}

Json ToJson(const InstanceRecord& i) {
    return {{"volume_id", i.volume_id},
            {"root", i.root},
            {"read_only", i.read_only},
            {"scope_id", i.scope_id},
            {"socket", i.socket},
            {"mountpoint", i.mountpoint},
            {"pid", i.pid},
            {"targets", i.targets}};
}

InstanceRecord InstanceFrom(const Json& j) {
    InstanceRecord i;
    i.volume_id = j.at("volume_id").get<std::string>();
    i.root = j.at("root").get<std::string>();
    i.read_only = j.at("read_only").get<bool>();
    i.scope_id = j.at("scope_id").get<std::string>();
    i.socket = j.at("socket").get<std::string>();
    i.mountpoint = j.at("mountpoint").get<std::string>();
    i.pid = j.at("pid").get<pid_t>();
    i.targets = j.at("targets").get<std::set<std::string>>();
    return i;
}

}  // namespace

absl::Status NodeState::Load() {
    std::string path = dir_ + "/" + kFile;
    std::ifstream in(path);
    if (!in) {
        return errno == ENOENT ? absl::OkStatus()
                               : absl::InternalError(absl::StrFormat("read %s: %s", path, strerror(errno)));
    }
    try {
        Json j = Json::parse(in);
        if (j.at("version").get<int>() != kVersion) {
            return absl::FailedPreconditionError(
                absl::StrFormat("%s: version %d is not %d", path, j.at("version").get<int>(), kVersion));
        }
        targets.clear();
        instances.clear();
        for (const auto& [target, record] : j.at("targets").items()) {
            targets[target] = TargetFrom(record);
        }
        for (const auto& [id, record] : j.at("instances").items()) {
            instances[id] = InstanceFrom(record);
        }
    } catch (const Json::exception& e) {
        return absl::DataLossError(
            absl::StrFormat("%s is damaged: %s (move it away to start afresh; the mounts "
                            "it names are then the administrator's to remove)",
                            path, e.what()));
    }
    return absl::OkStatus();
}

absl::Status NodeState::Save() const {
    Json j = {{"version", kVersion}, {"targets", Json::object()}, {"instances", Json::object()}};
    for (const auto& [target, record] : targets) {
        j["targets"][target] = ToJson(record);
    }
    for (const auto& [id, record] : instances) {
        j["instances"][id] = ToJson(record);
    }
    std::string bytes = j.dump(2) + "\n";
    std::string path = dir_ + "/" + kFile;
    std::string tmp = path + ".tmp";
    shmring::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    // No fsync: the state must outlive the plugin's process, which a rename of a written file
    // does; a node that crashes loses its mounts too, and kubelet publishes again.
    if (!fd.valid() || ::write(fd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()) ||
        ::rename(tmp.c_str(), path.c_str()) != 0) {
        return absl::InternalError(absl::StrFormat("write %s: %s", path, strerror(errno)));
    }
    return absl::OkStatus();
}

}  // namespace zerohop::csi
