// What the three services check alike: capabilities, the access key secret, status codes.

#include "absl/strings/str_format.h"
#include "services.h"

namespace zerohop::csi {

grpc::Status ToGrpc(const absl::Status& s) {
    return s.ok() ? grpc::Status::OK : grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

absl::Status CheckCapability(const ::csi::v1::VolumeCapability& cap) {
    using Mode = ::csi::v1::VolumeCapability::AccessMode;
    if (cap.has_block()) {
        return absl::InvalidArgumentError(
            "block volumes are not offered: a zerohop volume is a file system and a socket (access type mount)");
    }
    if (!cap.has_mount()) {
        return absl::InvalidArgumentError("the volume capability has no access type (mount)");
    }
    Mode::Mode mode = cap.access_mode().mode();
    if (mode == Mode::UNKNOWN || !Mode::Mode_IsValid(mode)) {
        return absl::InvalidArgumentError(absl::StrFormat("access mode %d is not known", static_cast<int>(mode)));
    }
    const std::string& fs = cap.mount().fs_type();
    if (!fs.empty() && fs != "zerohop" && fs != "fuse.zerohop") {
        return absl::InvalidArgumentError(
            absl::StrFormat("fsType \"%s\": a zerohop volume has no file system to format (leave it empty)", fs));
    }
    for (const std::string& flag : cap.mount().mount_flags()) {
        if (flag != "ro" && flag != "rw" && flag != "noexec" && flag != "exec" && flag != "nosuid" && flag != "nodev") {
            return absl::InvalidArgumentError(
                absl::StrFormat("mount flag \"%s\" is not offered (ro, rw, noexec, exec, nosuid, nodev)", flag));
        }
    }
    return absl::OkStatus();
}

absl::StatusOr<std::string> AccessKeyOf(const google::protobuf::Map<std::string, std::string>& secrets,
                                        std::string_view rpc) {
    auto it = secrets.find(kAccessKeySecret);
    if (it == secrets.end() || it->second.empty()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: the secret must hold %s, the volume's zerohop access key (nodePublishSecretRef for pods, the "
            "provisioner secret for a StorageClass)",
            std::string(rpc), kAccessKeySecret));
    }
    return it->second;
}

Context ToContext(const google::protobuf::Map<std::string, std::string>& map) {
    return Context(map.begin(), map.end());
}

}  // namespace zerohop::csi
