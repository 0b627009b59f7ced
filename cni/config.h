// The network configuration zerohop-cni reads on stdin, checked field by field, and the
// CNI error codes every failure carries.
//
//   {"cniVersion": "1.1.0", "name": "fast", "type": "zerohop",
//    "mode": "sriov", "pf": "ens1f0", "vlan": 100, "mtu": 9000, "trust": true,
//    "ipam": {"type": "host-local", "subnet": "10.56.0.0/16"}}
//
//   {"cniVersion": "1.0.0", "name": "fast", "type": "zerohop",
//    "mode": "macvlan", "master": "eth1", "macvlanMode": "bridge", "ipam": {...}}
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "netlink.h"

namespace zerohop::cni {

using Json = nlohmann::json;

// The spec's well-known error codes, and ours (100 and up).
enum CniCode : int {
    kIncompatibleVersion = 1,
    kUnsupportedField = 2,
    kUnknownContainer = 3,
    kInvalidEnvironment = 4,
    kIoFailure = 5,
    kDecodeFailure = 6,
    kInvalidConfig = 7,
    kTryAgainLater = 11,
    kNotAvailable = 50,  // STATUS: the plugin cannot take ADDs now
    kNoFreeDevice = 100,
    kDeviceFailure = 101,  // the kernel refused a step on the device
    kAlreadyAttached = 102,
    kDelegateFailure = 103,  // the IPAM plugin failed (its own code and message follow)
};

// An error with its CNI code (carried as a payload of the status).
absl::Status CniError(int code, absl::string_view message);
// The CNI code of `s`: its payload, or a code for its kind.
int CniCodeOf(const absl::Status& s);
// `s` with its message prefixed by `context`, keeping the code.
absl::Status WithContext(const absl::Status& s, absl::string_view context);

inline const std::vector<std::string>& SupportedVersions() {
    static const std::vector<std::string> v = {"1.0.0", "1.1.0"};
    return v;
}

enum class Mode { kSriov, kMacvlan };

struct Attachment {
    std::string container_id;
    std::string ifname;
    bool operator==(const Attachment&) const = default;
};

struct NetConf {
    std::string cni_version;
    std::string name;
    Mode mode = Mode::kSriov;
    // sriov
    std::string pf;
    std::string device_id;  // a VF's PCI address, from runtimeConfig (a device plugin) or the config
    std::optional<uint32_t> vlan;
    uint32_t vlan_qos = 0;
    std::optional<bool> spoof_check;
    std::optional<bool> trust;
    // macvlan
    std::string master;
    uint32_t macvlan_mode = 4;  // bridge
    // both
    std::optional<uint32_t> mtu;
    std::optional<MacAddress> mac;  // the config's "mac" or runtimeConfig's
    Json ipam;                      // null: no IPAM
    Json prev_result;               // null: none
    std::vector<Attachment> valid_attachments;  // GC's cni.dev/valid-attachments
    std::string state_dir = "/var/lib/cni/zerohop";
    Json raw;  // the whole configuration, as given
};

// Parses and checks stdin. `command` decides what must be there (VERSION needs nothing but
// a version; GC needs valid-attachments).
absl::StatusOr<NetConf> ParseNetConf(std::string_view text, std::string_view command);

// Name checks of the spec (CNI_CONTAINERID, CNI_IFNAME).
absl::Status CheckContainerId(std::string_view id);
absl::Status CheckInterfaceName(std::string_view name);

}  // namespace zerohop::cni
