#include "config.h"

#include <algorithm>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace zerohop::cni {
namespace {

constexpr char kCodePayload[] = "zerohop.cni/code";

absl::Status Invalid(absl::string_view message) { return CniError(kInvalidConfig, message); }

// Typed optional fields: absent or null is "not set"; the wrong type is an error.
absl::Status GetString(const Json& obj, const char* key, std::string* out, bool required) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return required ? Invalid(absl::StrFormat("\"%s\" is missing", key)) : absl::OkStatus();
    }
    if (!it->is_string()) {
        return Invalid(absl::StrFormat("\"%s\" must be a string", key));
    }
    *out = it->get<std::string>();
    if (required && out->empty()) {
        return Invalid(absl::StrFormat("\"%s\" is empty", key));
    }
    return absl::OkStatus();
}

absl::Status GetBool(const Json& obj, const char* key, std::optional<bool>* out) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return absl::OkStatus();
    }
    if (!it->is_boolean()) {
        return Invalid(absl::StrFormat("\"%s\" must be true or false", key));
    }
    *out = it->get<bool>();
    return absl::OkStatus();
}

absl::Status GetUint(const Json& obj, const char* key, uint64_t max, std::optional<uint32_t>* out) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        return absl::OkStatus();
    }
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || static_cast<uint64_t>(it->get<int64_t>()) > max) {
        return Invalid(absl::StrFormat("\"%s\" must be an integer in 0..%d", key, max));
    }
    *out = static_cast<uint32_t>(it->get<int64_t>());
    return absl::OkStatus();
}

absl::Status GetMac(const Json& obj, const char* key, std::optional<MacAddress>* out) {
    std::string text;
    if (absl::Status s = GetString(obj, key, &text, false); !s.ok() || text.empty()) {
        return s;
    }
    auto mac = MacAddress::Parse(text);
    if (!mac.ok()) {
        return Invalid(absl::StrCat("\"", key, "\": ", mac.status().message()));
    }
    *out = *mac;
    return absl::OkStatus();
}

}  // namespace

absl::Status CniError(int code, absl::string_view message) {
    absl::StatusCode kind = code == kInvalidConfig || code == kDecodeFailure || code == kInvalidEnvironment ||
                                    code == kIncompatibleVersion || code == kUnsupportedField
                                ? absl::StatusCode::kInvalidArgument
                                : absl::StatusCode::kFailedPrecondition;
    absl::Status s(kind, message);
    s.SetPayload(kCodePayload, absl::Cord(absl::StrCat(code)));
    return s;
}

int CniCodeOf(const absl::Status& s) {
    if (auto p = s.GetPayload(kCodePayload)) {
        int code = 0;
        if (absl::SimpleAtoi(std::string(*p), &code)) {
            return code;
        }
    }
    switch (s.code()) {
        case absl::StatusCode::kInvalidArgument:
            return kInvalidConfig;
        case absl::StatusCode::kUnavailable:
            return kTryAgainLater;
        default:
            return kDeviceFailure;
    }
}

absl::Status WithContext(const absl::Status& s, absl::string_view context) {
    absl::Status out(s.code(), absl::StrCat(context, ": ", s.message()));
    s.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
    return out;
}

absl::Status CheckContainerId(std::string_view id) {
    if (id.empty()) {
        return CniError(kInvalidEnvironment, "CNI_CONTAINERID is empty");
    }
    bool ok = (std::isalnum(static_cast<unsigned char>(id[0])) != 0) &&
              std::all_of(id.begin(), id.end(), [](char c) {
                  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
              });
    if (!ok || id.size() > 255) {
        return CniError(kInvalidEnvironment,
                        absl::StrFormat("CNI_CONTAINERID \"%s\": letters, digits, '-', '_' and '.' only", id));
    }
    return absl::OkStatus();
}

absl::Status CheckInterfaceName(std::string_view name) {
    bool ok = !name.empty() && name.size() < 16 && name != "." && name != ".." &&
              std::none_of(name.begin(), name.end(), [](char c) {
                  return c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) != 0 || c == '\0';
              });
    if (!ok) {
        return CniError(kInvalidEnvironment,
                        absl::StrFormat("CNI_IFNAME \"%s\" is not an interface name (1-15 characters, no '/', ':' "
                                        "or spaces)",
                                        name));
    }
    return absl::OkStatus();
}

absl::StatusOr<NetConf> ParseNetConf(std::string_view text, std::string_view command) {
    Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
        return CniError(kDecodeFailure, "the network configuration on stdin is not JSON");
    }
    if (!j.is_object()) {
        return CniError(kDecodeFailure, "the network configuration on stdin is not a JSON object");
    }
    NetConf c;
    c.raw = j;
    ZH_RETURN_IF_ERROR(GetString(j, "cniVersion", &c.cni_version, true));
    if (command == "VERSION") {
        return c;
    }
    const auto& versions = SupportedVersions();
    if (std::find(versions.begin(), versions.end(), c.cni_version) == versions.end()) {
        return CniError(kIncompatibleVersion,
                        absl::StrFormat("CNI version %s is not supported (this plugin speaks 1.0.0 and 1.1.0)",
                                        c.cni_version));
    }
    ZH_RETURN_IF_ERROR(GetString(j, "name", &c.name, true));
    std::string type;
    ZH_RETURN_IF_ERROR(GetString(j, "type", &type, true));
    std::string mode;
    ZH_RETURN_IF_ERROR(GetString(j, "mode", &mode, true));
    if (mode == "sriov") {
        c.mode = Mode::kSriov;
    } else if (mode == "macvlan") {
        c.mode = Mode::kMacvlan;
    } else {
        return Invalid(absl::StrFormat("\"mode\" is \"%s\": it must be \"sriov\" or \"macvlan\"", mode));
    }
    ZH_RETURN_IF_ERROR(GetString(j, "stateDir", &c.state_dir, false));
    if (c.state_dir.empty() || c.state_dir[0] != '/') {
        return Invalid("\"stateDir\" must be an absolute path");
    }
    if (auto it = j.find("runtimeConfig"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) {
            return Invalid("\"runtimeConfig\" must be an object");
        }
        ZH_RETURN_IF_ERROR(GetString(*it, "deviceID", &c.device_id, false));
        ZH_RETURN_IF_ERROR(GetMac(*it, "mac", &c.mac));
    }
    if (c.device_id.empty()) {
        ZH_RETURN_IF_ERROR(GetString(j, "deviceID", &c.device_id, false));
    }
    if (!c.mac) {
        ZH_RETURN_IF_ERROR(GetMac(j, "mac", &c.mac));
    }
    ZH_RETURN_IF_ERROR(GetUint(j, "mtu", 65535, &c.mtu));
    if (c.mtu && *c.mtu < 68) {
        return Invalid("\"mtu\" must be at least 68");
    }
    // Only what the mode knows is accepted: a typo or a field of the other mode is an error,
    // never silently ignored.
    auto refuse = [&](std::initializer_list<const char*> keys, const char* other) -> absl::Status {
        for (const char* k : keys) {
            if (j.contains(k)) {
                return CniError(kUnsupportedField, absl::StrFormat("\"%s\" applies to mode \"%s\" only", k, other));
            }
        }
        return absl::OkStatus();
    };
    if (c.mode == Mode::kSriov) {
        ZH_RETURN_IF_ERROR(refuse({"master", "macvlanMode"}, "macvlan"));
        ZH_RETURN_IF_ERROR(GetString(j, "pf", &c.pf, true));
        ZH_RETURN_IF_ERROR(GetUint(j, "vlan", 4094, &c.vlan));
        std::optional<uint32_t> qos;
        ZH_RETURN_IF_ERROR(GetUint(j, "vlanQoS", 7, &qos));
        c.vlan_qos = qos.value_or(0);
        if (qos && !c.vlan) {
            return Invalid("\"vlanQoS\" needs \"vlan\"");
        }
        ZH_RETURN_IF_ERROR(GetBool(j, "spoofchk", &c.spoof_check));
        ZH_RETURN_IF_ERROR(GetBool(j, "trust", &c.trust));
    } else {
        ZH_RETURN_IF_ERROR(refuse({"pf", "vlan", "vlanQoS", "spoofchk", "trust"}, "sriov"));
        ZH_RETURN_IF_ERROR(GetString(j, "master", &c.master, true));
        std::string m = "bridge";
        ZH_RETURN_IF_ERROR(GetString(j, "macvlanMode", &m, false));
        // MACVLAN_MODE_* of linux/if_link.h.
        if (m == "private") {
            c.macvlan_mode = 1;
        } else if (m == "vepa") {
            c.macvlan_mode = 2;
        } else if (m == "bridge") {
            c.macvlan_mode = 4;
        } else if (m == "passthru") {
            c.macvlan_mode = 8;
        } else {
            return Invalid(absl::StrFormat("\"macvlanMode\" is \"%s\": bridge, private, vepa or passthru", m));
        }
    }
    if (auto it = j.find("ipam"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) {
            return Invalid("\"ipam\" must be an object");
        }
        std::string ipam_type;
        if (absl::Status s = GetString(*it, "type", &ipam_type, true); !s.ok()) {
            return WithContext(s, "ipam");
        }
        if (ipam_type.find('/') != std::string::npos || ipam_type == "." || ipam_type == "..") {
            return Invalid(absl::StrFormat("ipam \"type\" \"%s\" is not a plugin name", ipam_type));
        }
        if (!it->empty()) {
            c.ipam = *it;
        }
    }
    if (auto it = j.find("prevResult"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) {
            return Invalid("\"prevResult\" must be an object");
        }
        c.prev_result = *it;
    }
    if (command == "GC") {
        auto it = j.find("cni.dev/valid-attachments");
        if (it != j.end() && !it->is_null()) {
            if (!it->is_array()) {
                return Invalid("\"cni.dev/valid-attachments\" must be an array");
            }
            for (const Json& a : *it) {
                if (!a.is_object()) {
                    return Invalid("an entry of \"cni.dev/valid-attachments\" is not an object");
                }
                Attachment att;
                if (absl::Status s = GetString(a, "containerID", &att.container_id, true); !s.ok()) {
                    return WithContext(s, "cni.dev/valid-attachments");
                }
                if (absl::Status s = GetString(a, "ifname", &att.ifname, true); !s.ok()) {
                    return WithContext(s, "cni.dev/valid-attachments");
                }
                c.valid_attachments.push_back(std::move(att));
            }
        }
    }
    return c;
}

}  // namespace zerohop::cni
