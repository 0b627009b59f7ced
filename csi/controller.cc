// Controller: dynamic provisioning. A volume is a directory <container>/<parentPath>/<name>
// made with the StorageClass's provisioner secret (its accessKey), and removed with it when
// the reclaim policy is Delete (Retain never calls DeleteVolume).

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "services.h"

namespace zerohop::csi {

namespace {

absl::Status CheckCapabilities(const google::protobuf::RepeatedPtrField<::csi::v1::VolumeCapability>& caps,
                               std::string_view rpc) {
    if (caps.empty()) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: volume_capabilities is missing", std::string(rpc)));
    }
    for (const auto& cap : caps) {
        ZH_RETURN_IF_ERROR(CheckCapability(cap));
    }
    return absl::OkStatus();
}

// The volume CreateVolume makes: StorageClass parameters container, parentPath, publish.
absl::StatusOr<VolumeSpec> SpecOf(const ::csi::v1::CreateVolumeRequest& req) {
    VolumeSpec spec;
    std::string parent;
    for (const auto& [key, value] : req.parameters()) {
        if (key == kContainerKey) {
            spec.container = value;
        } else if (key == kParentPathKey) {
            parent = value;
        } else if (key == kPublishKey) {
            ZH_RETURN_IF_ERROR(ParsePublish(value, &spec));
        } else if (key.rfind("csi.storage.k8s.io/", 0) != 0) {
            return absl::InvalidArgumentError(
                absl::StrFormat("StorageClass parameter \"%s\" is not known (known: container, parentPath, publish)",
                                key.substr(0, 100)));
        }
    }
    if (spec.container.empty()) {
        return absl::InvalidArgumentError("CreateVolume: the StorageClass must name a container (parameter container)");
    }
    if (req.name().find('/') != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrFormat("CreateVolume: name \"%s\" must be one path component", req.name().substr(0, 100)));
    }
    while (!parent.empty() && parent.back() == '/') {
        parent.pop_back();
    }
    // The handle's own parser checks the container, the parent and the name alike.
    ZH_ASSIGN_OR_RETURN(VolumeSpec parsed, ParseVolumeHandle(absl::StrCat(spec.container, "/", parent,
                                                                          parent.empty() ? "" : "/", req.name())));
    spec.sub_path = parsed.sub_path;
    return spec;
}

}  // namespace

grpc::Status ControllerService::CreateVolume(grpc::ServerContext*, const ::csi::v1::CreateVolumeRequest* req,
                                             ::csi::v1::CreateVolumeResponse* out) {
    auto create = [&]() -> absl::Status {
        if (req->name().empty()) {
            return absl::InvalidArgumentError("CreateVolume: name is missing");
        }
        ZH_RETURN_IF_ERROR(CheckCapabilities(req->volume_capabilities(), "CreateVolume"));
        if (req->has_volume_content_source()) {
            return absl::InvalidArgumentError("CreateVolume: volumes from snapshots or clones are not offered");
        }
        ZH_ASSIGN_OR_RETURN(VolumeSpec spec, SpecOf(*req));
        ZH_ASSIGN_OR_RETURN(std::string key, AccessKeyOf(req->secrets(), "CreateVolume"));
        ZH_RETURN_IF_ERROR(daemon_->MakeDirectories(key, spec.Root()));  // there already: the same volume
        ::csi::v1::Volume* v = out->mutable_volume();
        v->set_volume_id(VolumeHandle(spec));
        // Directories have no size of their own: the capacity asked for is the one given.
        v->set_capacity_bytes(req->has_capacity_range() ? req->capacity_range().required_bytes() : 0);
        (*v->mutable_volume_context())[kPublishKey] = spec.PublishText();
        // A node whose store is its own (embedded) has not seen this directory: it makes it.
        (*v->mutable_volume_context())[kCreateSubPathKey] = "true";
        return absl::OkStatus();
    };
    absl::Status s = create();
    Log(s.ok() ? LogLevel::kInfo : LogLevel::kWarning, "CreateVolume", "name", req->name(), "volume",
        out->volume().volume_id(), "code", absl::StatusCodeToString(s.code()), "error", std::string(s.message()));
    return ToGrpc(s);
}

grpc::Status ControllerService::DeleteVolume(grpc::ServerContext*, const ::csi::v1::DeleteVolumeRequest* req,
                                             ::csi::v1::DeleteVolumeResponse*) {
    auto remove = [&]() -> absl::Status {
        if (req->volume_id().empty()) {
            return absl::InvalidArgumentError("DeleteVolume: volume_id is missing");
        }
        auto spec = ParseVolumeHandle(req->volume_id());
        if (!spec.ok()) {
            return absl::OkStatus();  // no volume of ours has that id: it does not exist
        }
        if (spec->sub_path.empty()) {
            return absl::FailedPreconditionError(absl::StrFormat(
                "DeleteVolume: %s is a whole container; only a volume's directory is ever deleted", req->volume_id()));
        }
        ZH_ASSIGN_OR_RETURN(std::string key, AccessKeyOf(req->secrets(), "DeleteVolume"));
        return daemon_->RemoveTree(key, spec->Root());
    };
    absl::Status s = remove();
    Log(s.ok() ? LogLevel::kInfo : LogLevel::kWarning, "DeleteVolume", "volume", req->volume_id(), "code",
        absl::StatusCodeToString(s.code()), "error", std::string(s.message()));
    return ToGrpc(s);
}

grpc::Status ControllerService::ValidateVolumeCapabilities(grpc::ServerContext*,
                                                           const ::csi::v1::ValidateVolumeCapabilitiesRequest* req,
                                                           ::csi::v1::ValidateVolumeCapabilitiesResponse* out) {
    if (req->volume_id().empty()) {
        return ToGrpc(absl::InvalidArgumentError("ValidateVolumeCapabilities: volume_id is missing"));
    }
    if (req->volume_capabilities().empty()) {
        return ToGrpc(absl::InvalidArgumentError("ValidateVolumeCapabilities: volume_capabilities is missing"));
    }
    auto spec = ParseVolumeHandle(req->volume_id());
    if (!spec.ok()) {
        return ToGrpc(
            absl::NotFoundError(absl::StrFormat("no volume %s: %s", req->volume_id(), spec.status().message())));
    }
    // With a key, the volume must be there; without one, only the capabilities are judged.
    if (auto key = req->secrets().find(kAccessKeySecret); key != req->secrets().end()) {
        auto info = daemon_->Stat(key->second, spec->Root());
        if (!info.ok()) {
            return ToGrpc(info.status());
        }
        if (info->type != ObjectType::kDirectory) {
            return ToGrpc(absl::NotFoundError(absl::StrFormat("%s is not a directory", spec->Root().str())));
        }
    }
    for (const auto& cap : req->volume_capabilities()) {
        if (absl::Status s = CheckCapability(cap); !s.ok()) {
            out->set_message(std::string(s.message()));
            return grpc::Status::OK;  // not confirmed, with the reason
        }
    }
    auto* confirmed = out->mutable_confirmed();
    *confirmed->mutable_volume_context() = req->volume_context();
    *confirmed->mutable_volume_capabilities() = req->volume_capabilities();
    *confirmed->mutable_parameters() = req->parameters();
    return grpc::Status::OK;
}

grpc::Status ControllerService::ControllerGetCapabilities(grpc::ServerContext*,
                                                          const ::csi::v1::ControllerGetCapabilitiesRequest*,
                                                          ::csi::v1::ControllerGetCapabilitiesResponse* out) {
    using Rpc = ::csi::v1::ControllerServiceCapability::RPC;
    out->add_capabilities()->mutable_rpc()->set_type(Rpc::CREATE_DELETE_VOLUME);
    out->add_capabilities()->mutable_rpc()->set_type(Rpc::SINGLE_NODE_MULTI_WRITER);
    return grpc::Status::OK;
}

}  // namespace zerohop::csi
