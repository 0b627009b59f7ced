#pragma once
// What a CSI volume is to zerohop: a container and a sub-path, and what to publish of it.
//
// A persistent volume's handle is `<container>[/<sub-path>]`; its context (the PV's
// volumeAttributes, or what CreateVolume returned) may say what to publish. An ephemeral
// inline volume's context comes from the pod spec, untrusted: it names the container and
// sub-path itself. Everything here is checked and explained, never trusted.
//
//   auto spec = VolumeFromRequest(req.volume_id(), context);   // INVALID_ARGUMENT if bad
//   Path root = spec->Root();                                  // /<container>/<sub-path>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "zerohop/path.h"

namespace zerohop::csi {

using Context = std::map<std::string, std::string>;

// The volume context keys (volumeAttributes, StorageClass parameters, inline volumes).
inline constexpr char kContainerKey[] = "container";          // ephemeral: the container
inline constexpr char kSubPathKey[] = "subPath";              // ephemeral: a sub-path in it ("a/b")
inline constexpr char kPublishKey[] = "publish";              // fuse | socket | fuse,socket
inline constexpr char kCreateSubPathKey[] = "createSubPath";  // "true": made at publish if missing
// StorageClass parameters for CreateVolume (a volume is <container>/<parentPath>/<pv name>).
inline constexpr char kParentPathKey[] = "parentPath";
// What kubelet adds (podInfoOnMount, inline volumes).
inline constexpr char kEphemeralKey[] = "csi.storage.k8s.io/ephemeral";
inline constexpr char kPodNameKey[] = "csi.storage.k8s.io/pod.name";
inline constexpr char kPodNamespaceKey[] = "csi.storage.k8s.io/pod.namespace";
inline constexpr char kPodUidKey[] = "csi.storage.k8s.io/pod.uid";
inline constexpr char kServiceAccountKey[] = "csi.storage.k8s.io/serviceAccount.name";
// The secret's key (nodePublishSecretRef, provisioner secrets): the volume's access key.
inline constexpr char kAccessKeySecret[] = "accessKey";

struct VolumeSpec {
    std::string container;
    std::string sub_path;  // "" (the whole container) or "a/b"
    bool fuse = true;      // the file system view at the target
    bool socket = false;   // the scoped shared-memory socket at the target
    bool create_sub_path = false;
    bool ephemeral = false;

    Path Root() const;                // /<container>[/<sub-path>]
    std::string PublishText() const;  // "fuse", "socket" or "fuse,socket"
    bool operator==(const VolumeSpec&) const = default;
};

struct PodInfo {
    std::string name_space, name, uid, service_account;
    bool operator==(const PodInfo&) const = default;
};

// `<container>[/<sub-path>]`.
absl::StatusOr<VolumeSpec> ParseVolumeHandle(std::string_view handle);
std::string VolumeHandle(const VolumeSpec& spec);

// "fuse", "socket", "fuse,socket" (or "socket,fuse"); into `spec`.
absl::Status ParsePublish(std::string_view text, VolumeSpec* spec);

// The volume a NodePublishVolume names: persistent (the handle, and `publish` /
// `createSubPath` from the context) or ephemeral (everything from the context). Unknown
// context keys are an error (a typo should not silently publish something else).
absl::StatusOr<VolumeSpec> VolumeFromRequest(std::string_view volume_id, const Context& context);

// The pod kubelet names in the context (podInfoOnMount); empty fields if it does not.
PodInfo PodFromContext(const Context& context);


}  // namespace zerohop::csi
