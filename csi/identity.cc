// Identity: who the plugin is, what it offers, whether it is ready.

#include "services.h"

namespace zerohop::csi {

grpc::Status IdentityService::GetPluginInfo(grpc::ServerContext*, const ::csi::v1::GetPluginInfoRequest*,
                                            ::csi::v1::GetPluginInfoResponse* out) {
    out->set_name(kPluginName);
    out->set_vendor_version(ZEROHOP_VERSION);
    return grpc::Status::OK;
}

grpc::Status IdentityService::GetPluginCapabilities(grpc::ServerContext*,
                                                    const ::csi::v1::GetPluginCapabilitiesRequest*,
                                                    ::csi::v1::GetPluginCapabilitiesResponse* out) {
    if (controller_) {
        out->add_capabilities()->mutable_service()->set_type(::csi::v1::PluginCapability::Service::CONTROLLER_SERVICE);
    }
    return grpc::Status::OK;
}

grpc::Status IdentityService::Probe(grpc::ServerContext*, const ::csi::v1::ProbeRequest*,
                                    ::csi::v1::ProbeResponse* out) {
    // Not ready (not an error) while zerohopd does not answer: the CO waits.
    out->mutable_ready()->set_value(daemon_->Probe().ok());
    return grpc::Status::OK;
}

}  // namespace zerohop::csi
