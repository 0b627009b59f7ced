#include "volume.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace zerohop::csi {

namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

// A container name and a relative sub-path, each component a valid zerohop name.
absl::Status CheckRoot(std::string_view container, std::string_view sub_path, std::string_view what) {
    if (container.empty()) {
        return Invalid(absl::StrFormat("%s: the container is missing", std::string(what)));
    }
    if (container.find('/') != std::string_view::npos) {
        return Invalid(absl::StrFormat("%s: container \"%s\" is one name, without '/'", std::string(what),
                                       std::string(container.substr(0, 100))));
    }
    if (!sub_path.empty() && (sub_path.front() == '/' || sub_path.back() == '/')) {
        return Invalid(absl::StrFormat("%s: sub-path \"%s\" must be relative, like a/b", std::string(what),
                                       std::string(sub_path)));
    }
    std::string text = "/" + std::string(container) + (sub_path.empty() ? "" : "/") + std::string(sub_path);
    auto parsed = Path::Parse(text);
    if (!parsed.ok()) {
        return Invalid(absl::StrFormat("%s: %s", std::string(what), parsed.status().message()));
    }
    return absl::OkStatus();
}

absl::StatusOr<bool> Flag(const Context& context, const char* key, bool otherwise) {
    auto it = context.find(key);
    if (it == context.end()) {
        return otherwise;
    }
    if (it->second != "true" && it->second != "false") {
        return Invalid(absl::StrFormat("volume attribute %s: \"%s\" is not true or false", key, it->second));
    }
    return it->second == "true";
}

}  // namespace

Path VolumeSpec::Root() const {
    return *Path::Parse(absl::StrCat("/", container, sub_path.empty() ? "" : "/", sub_path));
}

std::string VolumeSpec::PublishText() const { return fuse && socket ? "fuse,socket" : socket ? "socket" : "fuse"; }

absl::StatusOr<VolumeSpec> ParseVolumeHandle(std::string_view handle) {
    VolumeSpec spec;
    size_t slash = handle.find('/');
    spec.container = std::string(handle.substr(0, slash));
    spec.sub_path = slash == std::string_view::npos ? "" : std::string(handle.substr(slash + 1));
    if (slash != std::string_view::npos && spec.sub_path.empty()) {
        spec.sub_path = "/";  // "demo/": refused below as a sub-path that is not relative
    }
    if (absl::Status s = CheckRoot(spec.container, spec.sub_path,
                                   absl::StrFormat("volume id \"%s\" (expected <container>[/<sub-path>])",
                                                   std::string(handle.substr(0, 300))));
        !s.ok()) {
        return s;
    }
    return spec;
}

std::string VolumeHandle(const VolumeSpec& spec) {
    return spec.sub_path.empty() ? spec.container : absl::StrCat(spec.container, "/", spec.sub_path);
}

absl::Status ParsePublish(std::string_view text, VolumeSpec* spec) {
    bool fuse = false, socket = false;
    for (absl::string_view part : absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
        if (part == "fuse" && !fuse) {
            fuse = true;
        } else if (part == "socket" && !socket) {
            socket = true;
        } else {
            return Invalid(absl::StrFormat("volume attribute publish: \"%s\" is not fuse, socket or fuse,socket",
                                           std::string(text.substr(0, 100))));
        }
    }
    spec->fuse = fuse;
    spec->socket = socket;
    return absl::OkStatus();
}

absl::StatusOr<VolumeSpec> VolumeFromRequest(std::string_view volume_id, const Context& context) {
    auto ephemeral = Flag(context, kEphemeralKey, false);
    if (!ephemeral.ok()) {
        return ephemeral.status();
    }
    VolumeSpec spec;
    if (*ephemeral) {
        // Kubelet names the volume (csi-<hash>); the pod spec says what it is.
        auto container = context.find(kContainerKey);
        if (container == context.end()) {
            return Invalid("an inline volume needs the volume attribute container");
        }
        spec.container = container->second;
        if (auto sub = context.find(kSubPathKey); sub != context.end()) {
            spec.sub_path = sub->second;
        }
        if (absl::Status s = CheckRoot(spec.container, spec.sub_path, "inline volume"); !s.ok()) {
            return s;
        }
        spec.ephemeral = true;
    } else {
        auto handle = ParseVolumeHandle(volume_id);
        if (!handle.ok()) {
            return handle.status();
        }
        spec = *handle;
    }
    for (const auto& [key, value] : context) {
        bool pod_info = key.rfind("csi.storage.k8s.io/", 0) == 0;
        bool ours = key == kPublishKey || key == kCreateSubPathKey;
        bool inline_only = key == kContainerKey || key == kSubPathKey;
        if (!pod_info && !ours && !(inline_only && spec.ephemeral)) {
            return Invalid(absl::StrFormat(
                "volume attribute \"%s\" is not known (known: container and subPath for inline volumes; publish, "
                "createSubPath)",
                key.substr(0, 100)));
        }
    }
    if (auto publish = context.find(kPublishKey); publish != context.end()) {
        if (absl::Status s = ParsePublish(publish->second, &spec); !s.ok()) {
            return s;
        }
    }
    auto create = Flag(context, kCreateSubPathKey, false);
    if (!create.ok()) {
        return create.status();
    }
    spec.create_sub_path = *create;
    return spec;
}

PodInfo PodFromContext(const Context& context) {
    auto get = [&](const char* key) {
        auto it = context.find(key);
        return it == context.end() ? std::string() : it->second.substr(0, 253);
    };
    return {get(kPodNamespaceKey), get(kPodNameKey), get(kPodUidKey), get(kServiceAccountKey)};
}

}  // namespace zerohop::csi
