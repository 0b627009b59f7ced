#include "cni_plugin.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "attachment_store.h"
#include "base/status_macros.h"
#include "config.h"
#include "delegate.h"
#include "netlink.h"
#include "sysfs_vfs.h"

namespace zerohop::cni {
namespace {

// What ADD did, to be taken back in reverse order if a later step fails.
class Undo {
public:
    Undo() = default;
    Undo(const Undo&) = delete;
    ~Undo() { Run(); }
    void Push(std::string what, std::function<absl::Status()> fn) { steps_.emplace_back(std::move(what), std::move(fn)); }
    void Dismiss() { steps_.clear(); }
    // Takes every step back (newest first); what could not be, for the error's details.
    std::string Run() {
        std::vector<std::string> failed;
        while (!steps_.empty()) {
            auto [what, fn] = std::move(steps_.back());
            steps_.pop_back();
            absl::Status s = fn();
            if (!s.ok()) {
                fprintf(stderr, "zerohop-cni: undoing %s: %s\n", what.c_str(), s.ToString().c_str());
                failed.push_back(absl::StrCat(what, ": ", s.message()));
            }
        }
        return absl::StrJoin(failed, "; ");
    }

private:
    std::vector<std::pair<std::string, std::function<absl::Status()>>> steps_;
};

// Record fields.
constexpr char kPhaseAdding[] = "adding";
constexpr char kPhaseAdded[] = "added";

std::string JsonString(const Json& j, const char* key) {
    if (!j.is_object()) {
        return std::string();
    }
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A member, or null: never inserts, never throws (records are read back from disk).
const Json& Field(const Json& j, const char* key) {
    static const Json kNull;
    if (!j.is_object()) {
        return kNull;
    }
    auto it = j.find(key);
    return it != j.end() ? *it : kNull;
}

bool JsonBool(const Json& j, const char* key) {
    const Json& v = Field(j, key);
    return v.is_boolean() && v.get<bool>();
}

int64_t JsonInt(const Json& j, const char* key, int64_t otherwise = 0) {
    if (!j.is_object()) {
        return otherwise;
    }
    auto it = j.find(key);
    return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : otherwise;
}

class Plugin {
public:
    Plugin(const CniRequest& req, NetConf conf, AttachmentStore store, NetNamespace host)
        : req_(req), conf_(std::move(conf)), store_(std::move(store)), host_(std::move(host)) {}

    absl::StatusOr<Json> Add();
    absl::Status Del();
    absl::Status Check();
    absl::Status Gc();
    absl::Status Status();

private:
    Attachment Self() const { return {req_.container_id, req_.ifname}; }
    absl::Status Step(const char* name) const {
        if (req_.crash_at == name) {
            _exit(137);
        }
        if (req_.fail_at == name) {
            return CniError(kDeviceFailure, absl::StrFormat("failure injected at step \"%s\"", name));
        }
        return absl::OkStatus();
    }
    absl::StatusOr<Rtnl> HostRtnl() const { return Rtnl::In(host_); }

    absl::StatusOr<NetNamespace> OpenPodNamespace(const std::string& path) const {
        if (path.empty()) {
            return CniError(kInvalidEnvironment, "CNI_NETNS is empty");
        }
        auto ns = NetNamespace::Open(path);
        if (absl::IsNotFound(ns.status())) {
            return CniError(kUnknownContainer, absl::StrFormat("network namespace %s does not exist", path));
        }
        if (!ns.ok()) {
            return CniError(kInvalidEnvironment, ns.status().message());
        }
        if (ns->id() == host_.id()) {
            return CniError(kInvalidEnvironment,
                            absl::StrFormat("CNI_NETNS %s is the plugin's own (host) namespace", path));
        }
        return ns;
    }

    // IPAM, at the highest CNI version both the IPAM plugin and this configuration speak.
    absl::StatusOr<Json> Ipam(const std::string& command, const Json& netconf, const Attachment& a,
                              const std::string& netns) const {
        std::string type = JsonString(Field(netconf, "ipam"), "type");
        std::string version = JsonString(netconf, "cniVersion");
        auto speaks = NegotiateVersion(type, req_.path, version);
        if (!speaks.ok()) {
            return WithContext(speaks.status(), "ipam");
        }
        Json conf = netconf;
        conf["cniVersion"] = *speaks;
        if (*speaks != version) {
            conf.erase("prevResult");  // a result of a newer version than it reads
        }
        PluginEnv env{.command = command, .container_id = a.container_id, .netns = netns, .ifname = a.ifname,
                      .args = req_.args, .path = req_.path};
        auto out = ExecPlugin(type, env, conf);
        if (!out.ok()) {
            return WithContext(out.status(), "ipam");
        }
        return out;
    }

    absl::StatusOr<Json> AttachVf(Json& record, const NetNamespace& pod, Undo& undo);
    absl::StatusOr<Json> AttachMacvlan(const NetNamespace& pod, Undo& undo);
    absl::Status Configure(Rtnl& pod, int index, const Json& ipam_result);
    absl::Status ReturnVf(const Json& record, const NetNamespace* pod, const NetNamespace* temp);
    absl::Status RestorePfSettings(const Json& record);
    absl::Status Release(const Attachment& a, const Json& record);
    absl::StatusOr<std::set<std::string>> ClaimedVfs();

    const CniRequest& req_;
    NetConf conf_;
    AttachmentStore store_;
    NetNamespace host_;
};

// ---- ADD ----

absl::StatusOr<std::set<std::string>> Plugin::ClaimedVfs() {
    ZH_ASSIGN_OR_RETURN(auto records, store_.List());
    std::set<std::string> claimed;
    for (const auto& [a, r] : records) {
        if (r.contains("vf") && r["vf"].is_object()) {
            claimed.insert(JsonString(r["vf"], "pci"));
        }
    }
    return claimed;
}

absl::StatusOr<Json> Plugin::AttachVf(Json& record, const NetNamespace& pod, Undo& undo) {
    ZH_ASSIGN_OR_RETURN(auto host, HostRtnl());
    auto pf = host.GetLink(conf_.pf);
    if (absl::IsNotFound(pf.status())) {
        return CniError(kInvalidConfig, absl::StrFormat("PF %s does not exist", conf_.pf));
    }
    ZH_RETURN_IF_ERROR(pf.status());
    auto vfs = ListVirtualFunctions(req_.sysfs, conf_.pf);
    if (!vfs.ok()) {
        return CniError(absl::IsNotFound(vfs.status()) ? kInvalidConfig : kNoFreeDevice, vfs.status().message());
    }
    // Choosing and claiming (writing the record) under the PF's lock: two ADDs never take
    // the same VF.
    std::optional<VirtualFunction> chosen;
    std::optional<LinkInfo> vf_link;
    {
        ZH_ASSIGN_OR_RETURN(auto lock, store_.Lock("pf-" + conf_.pf));
        ZH_ASSIGN_OR_RETURN(auto claimed, ClaimedVfs());
        for (const VirtualFunction& vf : *vfs) {
            if (!conf_.device_id.empty() && vf.pci != conf_.device_id) {
                continue;
            }
            if (claimed.count(vf.pci) != 0) {
                if (!conf_.device_id.empty()) {
                    return CniError(kNoFreeDevice, absl::StrFormat("VF %s of %s is attached to another container",
                                                                   vf.pci, conf_.pf));
                }
                continue;
            }
            if (vf.netdev.empty()) {
                continue;
            }
            auto link = host.GetLink(vf.netdev);
            if (!link.ok()) {
                continue;  // not in the host's namespace: someone else's
            }
            chosen = vf;
            vf_link = *link;
            break;
        }
        if (!chosen) {
            if (!conf_.device_id.empty()) {
                bool known = false;
                for (const auto& vf : *vfs) {
                    known = known || vf.pci == conf_.device_id;
                }
                return CniError(known ? kNoFreeDevice : kInvalidConfig,
                                known ? absl::StrFormat("VF %s of %s has no network device in the host namespace",
                                                        conf_.device_id, conf_.pf)
                                      : absl::StrFormat("deviceID %s is not a VF of %s", conf_.device_id, conf_.pf));
            }
            return CniError(kNoFreeDevice, absl::StrFormat("PF %s has no free VF (%d VFs, all attached or without a "
                                                           "network device)",
                                                           conf_.pf, vfs->size()));
        }
        ZH_RETURN_IF_ERROR(Step("claim"));
        Json vf = {{"index", chosen->index},
                   {"pci", chosen->pci},
                   {"netdev", chosen->netdev},
                   {"mac", vf_link->mac.ToString()},
                   {"mtu", vf_link->mtu},
                   {"rdma", chosen->rdma_devices}};
        for (const VfState& st : pf->vfs) {
            if (st.index == static_cast<uint32_t>(chosen->index)) {
                Json pfs = {{"mac", st.mac.ToString()}, {"vlan", st.vlan}, {"qos", st.qos}};
                if (st.spoof_check) {
                    pfs["spoofchk"] = *st.spoof_check;
                }
                if (st.trust) {
                    pfs["trust"] = *st.trust;
                }
                vf["pf_settings"] = pfs;
            }
        }
        record["vf"] = vf;
        ZH_RETURN_IF_ERROR(store_.Save(Self(), record));
    }

    // Settings the PF makes for the VF (a VF cannot be trusted to make them itself).
    VfSettings settings{.index = static_cast<uint32_t>(chosen->index),
                        .vlan = conf_.vlan,
                        .qos = conf_.vlan_qos,
                        .spoof_check = conf_.spoof_check,
                        .trust = conf_.trust};
    bool mac_by_pf = false;
    if (conf_.vlan || conf_.spoof_check || conf_.trust || conf_.mac) {
        ZH_RETURN_IF_ERROR(Step("vf-settings"));
        undo.Push("the PF's settings of the VF", [this, &record] { return RestorePfSettings(record); });
        if (conf_.vlan || conf_.spoof_check || conf_.trust) {
            if (absl::Status s = host.SetVf(pf->index, settings); !s.ok()) {
                return CniError(kDeviceFailure, absl::StrFormat("PF %s refused the settings of VF %d: %s", conf_.pf,
                                                                chosen->index, s.message()));
            }
        }
        if (conf_.mac) {
            // The administrative MAC, where the PF has VF controls; the netdev's own below.
            mac_by_pf = host.SetVf(pf->index, {.index = settings.index, .mac = conf_.mac}).ok();
        }
        record["vf"]["pf_changed"] = true;
        record["vf"]["pf_mac_changed"] = mac_by_pf;
    }

    // Into a namespace nobody else sees: renamed and configured there, then into the pod,
    // so that no name in the host or the pod is ever taken or raced for.
    ZH_RETURN_IF_ERROR(Step("temp-netns"));
    ZH_ASSIGN_OR_RETURN(auto temp, NetNamespace::CreateAnonymous());
    ZH_RETURN_IF_ERROR(Step("move-to-temp"));
    ZH_RETURN_IF_ERROR(host.SetUp(vf_link->index, false));
    if (absl::Status s = host.MoveTo(vf_link->index, temp.fd()); !s.ok()) {
        return WithContext(s, absl::StrFormat("VF %s (%s)", chosen->pci, chosen->netdev));
    }
    // Recognized by its MAC wherever it goes (its own, or the one it is given).
    record["vf"]["pod_mac"] = conf_.mac ? conf_.mac->ToString() : vf_link->mac.ToString();
    ZH_RETURN_IF_ERROR(store_.Save(Self(), record));  // for a DEL after a crash here
    // From here on, wherever it is, the VF goes back to the host with its own name and settings.
    auto temp_ns = std::make_shared<NetNamespace>(std::move(temp));
    undo.Push("moving the VF back to the host", [this, &record, &pod, temp_ns] {
        return ReturnVf(record, &pod, temp_ns.get());
    });
    ZH_ASSIGN_OR_RETURN(auto tr, Rtnl::In(*temp_ns));
    ZH_ASSIGN_OR_RETURN(auto in_temp, tr.GetLink(chosen->netdev));
    ZH_RETURN_IF_ERROR(Step("rename"));
    ZH_RETURN_IF_ERROR(tr.SetName(in_temp.index, req_.ifname));
    ZH_RETURN_IF_ERROR(Step("configure"));
    if (conf_.mac) {
        if (absl::Status s = tr.SetMac(in_temp.index, *conf_.mac); !s.ok()) {
            return WithContext(s, "VF MAC");
        }
    }
    if (conf_.mtu) {
        if (absl::Status s = tr.SetMtu(in_temp.index, *conf_.mtu); !s.ok()) {
            return WithContext(s, "VF MTU");
        }
    }
    ZH_RETURN_IF_ERROR(Step("move-to-pod"));
    if (absl::Status s = tr.MoveTo(in_temp.index, pod.fd()); !s.ok()) {
        if (absl::IsAlreadyExists(s)) {
            return CniError(kAlreadyAttached, absl::StrFormat("%s already has an interface %s", req_.netns, req_.ifname));
        }
        return WithContext(s, absl::StrFormat("moving VF %s into %s as %s", chosen->pci, req_.netns, req_.ifname));
    }
    // Its RDMA device follows it where RDMA devices belong to one namespace each (in shared
    // mode every namespace sees every RDMA device, and there is nothing to move).
    if (!chosen->rdma_devices.empty()) {
        ZH_RETURN_IF_ERROR(Step("rdma"));
        auto rdma = RdmaNetlink::Open();
        if (rdma.ok()) {
            ZH_ASSIGN_OR_RETURN(auto exclusive, rdma->ExclusiveNetns());
            if (exclusive) {
                Json moved = Json::array();
                for (const std::string& dev : chosen->rdma_devices) {
                    ZH_ASSIGN_OR_RETURN(auto index, rdma->DeviceIndex(dev));
                    if (absl::Status s = rdma->MoveDevice(index, pod.fd()); !s.ok()) {
                        return WithContext(s, absl::StrFormat("RDMA device %s", dev));
                    }
                    moved.push_back({{"name", dev}, {"index", index}});
                    undo.Push("moving the RDMA device back", [this, idx = index] {
                        auto back = RdmaNetlink::Open();
                        return back.ok() ? back->MoveDevice(idx, host_.fd()) : back.status();
                    });
                }
                record["vf"]["rdma_moved"] = moved;
            }
        } else {
            fprintf(stderr, "zerohop-cni: VF %s has RDMA devices but %s; they stay where they are\n",
                    chosen->pci.c_str(), std::string(rdma.status().message()).c_str());
        }
    }
    ZH_ASSIGN_OR_RETURN(auto pr, Rtnl::In(pod));
    ZH_ASSIGN_OR_RETURN(auto in_pod, pr.GetLink(req_.ifname));
    record["vf"]["pod_mac"] = in_pod.mac.ToString();
    Json iface = {{"name", req_.ifname}, {"mac", in_pod.mac.ToString()}, {"sandbox", req_.netns}};
    if (conf_.cni_version >= "1.1.0") {
        iface["mtu"] = in_pod.mtu;
        iface["pciID"] = chosen->pci;
    }
    iface["_index"] = in_pod.index;
    return iface;
}

absl::StatusOr<Json> Plugin::AttachMacvlan(const NetNamespace& pod, Undo& undo) {
    ZH_ASSIGN_OR_RETURN(auto host, HostRtnl());
    auto master = host.GetLink(conf_.master);
    if (absl::IsNotFound(master.status())) {
        return CniError(kInvalidConfig, absl::StrFormat("master %s does not exist", conf_.master));
    }
    ZH_RETURN_IF_ERROR(master.status());
    ZH_RETURN_IF_ERROR(Step("create"));
    // Created straight in the pod's namespace with its final name: nothing to race for.
    MacvlanSpec spec{.name = req_.ifname,
                     .master_index = master->index,
                     .mode = conf_.macvlan_mode,
                     .mtu = conf_.mtu.value_or(0),
                     .mac = conf_.mac,
                     .netns_fd = pod.fd()};
    if (absl::Status s = host.AddMacvlan(spec); !s.ok()) {
        if (absl::IsAlreadyExists(s)) {
            return CniError(kAlreadyAttached, absl::StrFormat("%s already has an interface %s", req_.netns, req_.ifname));
        }
        return WithContext(s, absl::StrFormat("macvlan on %s", conf_.master));
    }
    ZH_ASSIGN_OR_RETURN(auto pr, Rtnl::In(pod));
    ZH_ASSIGN_OR_RETURN(auto link, pr.GetLink(req_.ifname));
    undo.Push("deleting the macvlan", [&pod, index = link.index] {
        auto r = Rtnl::In(pod);
        return r.ok() ? r->DeleteLink(index) : r.status();
    });
    Json iface = {{"name", req_.ifname}, {"mac", link.mac.ToString()}, {"sandbox", req_.netns}};
    if (conf_.cni_version >= "1.1.0") {
        iface["mtu"] = link.mtu;
    }
    iface["_index"] = link.index;
    return iface;
}

absl::Status Plugin::Configure(Rtnl& pod, int index, const Json& ipam_result) {
    ZH_RETURN_IF_ERROR(Step("up"));
    ZH_RETURN_IF_ERROR(pod.SetUp(index, true));
    ZH_RETURN_IF_ERROR(Step("addresses"));
    std::vector<IpPrefix> gateways;
    if (ipam_result.contains("ips") && ipam_result["ips"].is_array()) {
        for (const Json& ip : ipam_result["ips"]) {
            auto addr = IpPrefix::Parse(JsonString(ip, "address"));
            if (!addr.ok()) {
                return CniError(kDecodeFailure, absl::StrCat("ipam result: ", addr.status().message()));
            }
            if (absl::Status s = pod.AddAddress(index, *addr); !s.ok()) {
                return WithContext(s, addr->ToString());
            }
            if (auto gw = IpPrefix::Parse(JsonString(ip, "gateway")); gw.ok()) {
                gateways.push_back(*gw);
            }
        }
    }
    ZH_RETURN_IF_ERROR(Step("routes"));
    if (ipam_result.contains("routes") && ipam_result["routes"].is_array()) {
        for (const Json& r : ipam_result["routes"]) {
            auto dst = IpPrefix::Parse(JsonString(r, "dst"));
            if (!dst.ok()) {
                return CniError(kDecodeFailure, absl::StrCat("ipam route: ", dst.status().message()));
            }
            RouteSpec route{.dst = *dst, .link_index = index};
            if (auto gw = IpPrefix::Parse(JsonString(r, "gw")); gw.ok()) {
                route.gateway = *gw;
            } else {
                for (const IpPrefix& g : gateways) {
                    if (g.family == dst->family) {
                        route.gateway = g;
                        break;
                    }
                }
            }
            if (absl::Status s = pod.AddRoute(route); !s.ok() && !absl::IsAlreadyExists(s)) {
                return WithContext(s, absl::StrCat("route to ", dst->ToString()));
            }
        }
    }
    return absl::OkStatus();
}

absl::StatusOr<Json> Plugin::Add() {
    ZH_RETURN_IF_ERROR(CheckContainerId(req_.container_id));
    ZH_RETURN_IF_ERROR(CheckInterfaceName(req_.ifname));
    ZH_ASSIGN_OR_RETURN(auto pod, OpenPodNamespace(req_.netns));
    ZH_ASSIGN_OR_RETURN(auto lock, store_.Lock(AttachmentStore::LockName(Self())));
    ZH_ASSIGN_OR_RETURN(auto existing, store_.Load(Self()));
    if (existing) {
        if (JsonString(*existing, "phase") == kPhaseAdded) {
            return CniError(kAlreadyAttached,
                            absl::StrFormat("container %s already has %s on network %s (DEL it first)",
                                            req_.container_id, req_.ifname, JsonString(*existing, "network")));
        }
        // An ADD that died half-way: finish taking it back first.
        if (absl::Status s = Release(Self(), *existing); !s.ok()) {
            return WithContext(s, "cleaning up an earlier ADD that did not finish");
        }
    }
    Json record = {{"phase", kPhaseAdding},
                   {"network", conf_.name},
                   {"mode", conf_.mode == Mode::kSriov ? "sriov" : "macvlan"},
                   {"netns", req_.netns},
                   {"netconf", conf_.raw}};
    ZH_RETURN_IF_ERROR(store_.Save(Self(), record));
    Undo undo;
    undo.Push("the state record", [this] { return store_.Remove(Self()); });

    Json ipam_result = Json::object();
    if (!conf_.ipam.is_null()) {
        ZH_RETURN_IF_ERROR(Step("ipam"));
        ZH_ASSIGN_OR_RETURN(auto r, Ipam("ADD", conf_.raw, Self(), req_.netns));
        undo.Push("the IPAM reservation", [this] { return Ipam("DEL", conf_.raw, Self(), req_.netns).status(); });
        if (!r.is_object()) {
            return CniError(kDecodeFailure, "ipam ADD: the result is not an object");
        }
        ipam_result = r;
    }
    ZH_ASSIGN_OR_RETURN(auto iface,
                        conf_.mode == Mode::kSriov ? AttachVf(record, pod, undo) : AttachMacvlan(pod, undo));
    int index = static_cast<int>(JsonInt(iface, "_index"));
    iface.erase("_index");
    ZH_ASSIGN_OR_RETURN(auto pr, Rtnl::In(pod));
    ZH_RETURN_IF_ERROR(Configure(pr, index, ipam_result));

    // The result: what came before (a chained plugin's), then ours.
    Json result = {{"cniVersion", conf_.cni_version}};
    Json interfaces = Json::array(), ips = Json::array(), routes = Json::array();
    Json dns = Json::object();
    const Json& prev = conf_.prev_result;
    if (prev.is_object()) {
        for (const char* key : {"interfaces", "ips", "routes"}) {
            if (prev.contains(key) && prev[key].is_array()) {
                (key[0] == 'i' ? (key[1] == 'n' ? interfaces : ips) : routes) = prev[key];
            }
        }
        if (prev.contains("dns") && prev["dns"].is_object()) {
            dns = prev["dns"];
        }
    }
    int our_index = static_cast<int>(interfaces.size());
    interfaces.push_back(iface);
    if (ipam_result.contains("ips") && ipam_result["ips"].is_array()) {
        for (Json ip : ipam_result["ips"]) {
            ip["interface"] = our_index;
            ips.push_back(ip);
        }
    }
    if (ipam_result.contains("routes") && ipam_result["routes"].is_array()) {
        for (const Json& r : ipam_result["routes"]) {
            routes.push_back(r);
        }
    }
    if (ipam_result.contains("dns") && ipam_result["dns"].is_object() && !ipam_result["dns"].empty()) {
        dns = ipam_result["dns"];
    }
    result["interfaces"] = interfaces;
    if (!ips.empty()) {
        result["ips"] = ips;
    }
    if (!routes.empty()) {
        result["routes"] = routes;
    }
    result["dns"] = dns;

    ZH_RETURN_IF_ERROR(Step("record"));
    record["phase"] = kPhaseAdded;
    record["result"] = result;
    ZH_RETURN_IF_ERROR(store_.Save(Self(), record));
    undo.Dismiss();
    return result;
}

// ---- taking an attachment back (DEL, GC, a failed ADD) ----

absl::Status Plugin::RestorePfSettings(const Json& record) {
    const Json& vf = Field(record, "vf");
    if (!vf.is_object() || !vf.contains("pf_settings") || !JsonBool(vf, "pf_changed")) {
        return absl::OkStatus();
    }
    ZH_ASSIGN_OR_RETURN(auto host, HostRtnl());
    std::string pf_name = JsonString(Field(record, "netconf"), "pf");
    auto pf = host.GetLink(pf_name);
    if (absl::IsNotFound(pf.status())) {
        return absl::OkStatus();  // the PF itself is gone: nothing holds the settings any more
    }
    ZH_RETURN_IF_ERROR(pf.status());
    const Json& was = Field(vf, "pf_settings");
    VfSettings back{.index = static_cast<uint32_t>(JsonInt(vf, "index"))};
    const Json& nc = Field(record, "netconf");
    if (nc.contains("vlan")) {
        back.vlan = static_cast<uint32_t>(JsonInt(was, "vlan"));
        back.qos = static_cast<uint32_t>(JsonInt(was, "qos"));
    }
    if (nc.contains("spoofchk") && Field(was, "spoofchk").is_boolean()) {
        back.spoof_check = JsonBool(was, "spoofchk");
    }
    if (nc.contains("trust") && Field(was, "trust").is_boolean()) {
        back.trust = JsonBool(was, "trust");
    }
    if (back.vlan || back.spoof_check || back.trust) {
        ZH_RETURN_IF_ERROR(host.SetVf(pf->index, back));
    }
    if (JsonBool(vf, "pf_mac_changed")) {
        if (auto mac = MacAddress::Parse(JsonString(was, "mac")); mac.ok()) {
            return host.SetVf(pf->index, {.index = back.index, .mac = *mac});
        }
    }
    return absl::OkStatus();
}

// Finds the VF (in the temporary namespace of a failed ADD, in the pod's, or back in the
// host's after its namespace went away) and returns it to the host with its own name, MAC
// and MTU, through a namespace of its own.
absl::Status Plugin::ReturnVf(const Json& record, const NetNamespace* pod, const NetNamespace* temp) {
    const Json& vf = Field(record, "vf");
    if (!vf.is_object()) {
        return absl::OkStatus();  // the ADD died before it chose one
    }
    std::string own_name = JsonString(vf, "netdev");
    auto own_mac = MacAddress::Parse(JsonString(vf, "mac"));
    auto pod_mac = MacAddress::Parse(JsonString(vf, "pod_mac"));
    uint32_t own_mtu = static_cast<uint32_t>(JsonInt(vf, "mtu"));
    std::string pod_name = record.contains("ifname") ? JsonString(record, "ifname") : req_.ifname;
    auto ours = [&](const LinkInfo& l) {
        return (own_mac.ok() && l.mac == *own_mac) || (pod_mac.ok() && l.mac == *pod_mac);
    };
    // Restores name, MAC, MTU in `ns` (nobody else's) and moves it to the host.
    auto restore_and_return = [&](Rtnl& r, int index, bool to_host) -> absl::Status {
        ZH_ASSIGN_OR_RETURN(auto link, r.GetLink(index));
        if (link.name != own_name) {
            ZH_RETURN_IF_ERROR(r.SetName(index, own_name));
        }
        if (own_mac.ok() && !(link.mac == *own_mac)) {
            ZH_RETURN_IF_ERROR(r.SetMac(index, *own_mac));
        }
        if (own_mtu != 0 && link.mtu != own_mtu) {
            ZH_RETURN_IF_ERROR(r.SetMtu(index, own_mtu));
        }
        return to_host ? r.MoveTo(index, host_.fd()) : absl::OkStatus();
    };
    for (const NetNamespace* ns : {temp, pod}) {
        if (ns == nullptr) {
            continue;
        }
        ZH_ASSIGN_OR_RETURN(auto r, Rtnl::In(*ns));
        for (const std::string& name : {pod_name, own_name}) {
            auto link = r.GetLink(name);
            if (!link.ok() || !ours(*link)) {
                continue;
            }
            ZH_RETURN_IF_ERROR(r.SetUp(link->index, false));
            if (ns == temp) {
                return restore_and_return(r, link->index, true);
            }
            ZH_ASSIGN_OR_RETURN(auto own, NetNamespace::CreateAnonymous());
            ZH_RETURN_IF_ERROR(r.MoveTo(link->index, own.fd()));
            ZH_ASSIGN_OR_RETURN(auto tr, Rtnl::In(own));
            ZH_ASSIGN_OR_RETURN(auto there, tr.GetLink(name));
            absl::Status s = restore_and_return(tr, there.index, true);
            if (!s.ok()) {
                // Never leave it in a namespace that dies with this process (a VF would go
                // back to the host under any name; a virtual device would be destroyed).
                if (!tr.MoveTo(there.index, host_.fd()).ok()) {
                    tr.MoveTo(there.index, ns->fd()).IgnoreError();
                }
            }
            return s;
        }
    }
    // Not in a pod: a namespace that went away returned it to the host (under its name in
    // the pod, or the kernel's "devN" if that was taken). Sysfs names it.
    ZH_ASSIGN_OR_RETURN(auto host, HostRtnl());
    std::vector<std::string> names = {own_name, pod_name};
    auto vfs = ListVirtualFunctions(req_.sysfs, JsonString(Field(record, "netconf"), "pf"));
    if (vfs.ok()) {
        for (const auto& v : *vfs) {
            if (v.pci == JsonString(vf, "pci") && !v.netdev.empty()) {
                names.push_back(v.netdev);
            }
        }
    }
    for (const std::string& name : names) {
        auto link = host.GetLink(name);
        if (link.ok() && ours(*link)) {
            if (link->name != own_name && link->up()) {
                ZH_RETURN_IF_ERROR(host.SetUp(link->index, false));
            }
            return restore_and_return(host, link->index, false);
        }
    }
    return absl::OkStatus();  // gone (unplugged, or a test's veth whose namespace was deleted)
}

absl::Status Plugin::Release(const Attachment& a, const Json& record) {
    std::string netns = JsonString(record, "netns");
    std::optional<NetNamespace> pod;
    if (!netns.empty()) {
        auto ns = NetNamespace::Open(netns);
        if (ns.ok()) {
            pod = std::move(*ns);
        } else if (!absl::IsNotFound(ns.status())) {
            return ns.status();
        }
    }
    if (pod && pod->id() == host_.id()) {
        pod.reset();  // never treat the host's interfaces as the pod's
    }
    Json rec = record;
    rec["ifname"] = a.ifname;
    if (JsonString(record, "mode") == "sriov") {
        const Json& moved = Field(Field(record, "vf"), "rdma_moved");
        if (pod && moved.is_array()) {
            for (const Json& dev : moved) {
                auto rdma = RdmaNetlink::Open();
                if (rdma.ok()) {
                    absl::Status s = rdma->MoveDevice(static_cast<uint32_t>(JsonInt(dev, "index")), host_.fd());
                    if (!s.ok() && !absl::IsNotFound(s)) {
                        return WithContext(s, "moving the RDMA device back");
                    }
                }
            }
        }
        if (absl::Status s = ReturnVf(rec, pod ? &*pod : nullptr, nullptr); !s.ok()) {
            return WithContext(s, "returning the VF to the host");
        }
        if (absl::Status s = RestorePfSettings(record); !s.ok()) {
            return WithContext(s, "restoring the PF's settings of the VF");
        }
    } else if (pod) {
        ZH_ASSIGN_OR_RETURN(auto r, Rtnl::In(*pod));
        auto link = r.GetLink(a.ifname);
        if (link.ok() && link->kind == "macvlan") {
            if (absl::Status s = r.DeleteLink(link->index); !s.ok() && !absl::IsNotFound(s)) {
                return s;
            }
        }
    }
    const Json& netconf = Field(record, "netconf");
    if (Field(netconf, "ipam").is_object() && !Field(netconf, "ipam").empty()) {
        ZH_RETURN_IF_ERROR(Ipam("DEL", netconf, a, netns).status());
    }
    return store_.Remove(a);
}

absl::Status Plugin::Del() {
    ZH_RETURN_IF_ERROR(CheckContainerId(req_.container_id));
    ZH_RETURN_IF_ERROR(CheckInterfaceName(req_.ifname));
    ZH_ASSIGN_OR_RETURN(auto lock, store_.Lock(AttachmentStore::LockName(Self())));
    ZH_ASSIGN_OR_RETURN(auto record, store_.Load(Self()));
    if (!record) {
        // Nothing recorded (never added, already deleted, or an ADD that failed and took
        // itself back): IPAM is still told, as the spec asks; it is idempotent too.
        absl::Status s = conf_.ipam.is_null() ? absl::OkStatus() : Ipam("DEL", conf_.raw, Self(), req_.netns).status();
        if (s.ok()) {
            lock.RemoveOnRelease();
        }
        return s;
    }
    absl::Status s = Release(Self(), *record);
    if (s.ok()) {
        lock.RemoveOnRelease();
    }
    return s;
}

// ---- CHECK, GC, STATUS ----

absl::Status Plugin::Check() {
    ZH_RETURN_IF_ERROR(CheckContainerId(req_.container_id));
    ZH_RETURN_IF_ERROR(CheckInterfaceName(req_.ifname));
    if (!conf_.prev_result.is_object()) {
        return CniError(kInvalidConfig, "CHECK needs prevResult");
    }
    ZH_ASSIGN_OR_RETURN(auto pod, OpenPodNamespace(req_.netns));
    ZH_ASSIGN_OR_RETURN(auto lock, store_.Lock(AttachmentStore::LockName(Self())));
    ZH_ASSIGN_OR_RETURN(auto record, store_.Load(Self()));
    auto failed = [&](std::string msg) { return CniError(kDeviceFailure, "CHECK: " + msg); };
    if (!record || JsonString(*record, "phase") != kPhaseAdded) {
        return CniError(kUnknownContainer,
                        absl::StrFormat("CHECK: container %s has no %s attached by this plugin", req_.container_id,
                                        req_.ifname));
    }
    ZH_ASSIGN_OR_RETURN(auto r, Rtnl::In(pod));
    auto link = r.GetLink(req_.ifname);
    if (!link.ok()) {
        return failed(absl::StrFormat("%s has no interface %s", req_.netns, req_.ifname));
    }
    // The interface is the one ADD made: its kind and MAC (a VF keeps the MAC it was given).
    const Json& interfaces = Field(Field(*record, "result"), "interfaces");
    std::string want_mac;
    if (interfaces.is_array()) {
        for (const Json& i : interfaces) {
            if (JsonString(i, "name") == req_.ifname && JsonString(i, "sandbox") == req_.netns) {
                want_mac = JsonString(i, "mac");
            }
        }
    }
    if (!want_mac.empty() && link->mac.ToString() != want_mac) {
        return failed(absl::StrFormat("%s has MAC %s, not %s", req_.ifname, link->mac.ToString(), want_mac));
    }
    if (conf_.mode == Mode::kMacvlan && link->kind != "macvlan") {
        return failed(absl::StrFormat("%s is a %s, not a macvlan", req_.ifname, link->kind.empty() ? "device" : link->kind));
    }
    if (conf_.mtu && link->mtu != *conf_.mtu) {
        return failed(absl::StrFormat("%s has MTU %d, not %d", req_.ifname, link->mtu, *conf_.mtu));
    }
    if (!link->up()) {
        return failed(absl::StrFormat("%s is down", req_.ifname));
    }
    // Every address prevResult gives this interface is on it.
    ZH_ASSIGN_OR_RETURN(auto addrs, r.ListAddresses(link->index));
    const Json& prev = conf_.prev_result;
    if (prev.contains("interfaces") && prev["interfaces"].is_array() && prev.contains("ips") && prev["ips"].is_array()) {
        for (const Json& ip : prev["ips"]) {
            int64_t i = JsonInt(ip, "interface", -1);
            if (i < 0 || i >= static_cast<int64_t>(prev["interfaces"].size()) ||
                JsonString(prev["interfaces"][i], "name") != req_.ifname) {
                continue;
            }
            auto want = IpPrefix::Parse(JsonString(ip, "address"));
            if (!want.ok()) {
                return CniError(kDecodeFailure, absl::StrCat("prevResult: ", want.status().message()));
            }
            bool found = false;
            for (const IpPrefix& a : addrs) {
                found = found || a == *want;
            }
            if (!found) {
                return failed(absl::StrFormat("%s lacks address %s", req_.ifname, want->ToString()));
            }
        }
    }
    if (!conf_.ipam.is_null()) {
        return Ipam("CHECK", conf_.raw, Self(), req_.netns).status();
    }
    return absl::OkStatus();
}

absl::Status Plugin::Gc() {
    ZH_ASSIGN_OR_RETURN(auto records, store_.List());
    std::vector<std::string> failures;
    for (auto& [a, r] : records) {
        if (JsonString(r, "network") != conf_.name) {
            continue;  // another network's: its own GC decides
        }
        if (std::find(conf_.valid_attachments.begin(), conf_.valid_attachments.end(), a) !=
            conf_.valid_attachments.end()) {
            continue;
        }
        ZH_ASSIGN_OR_RETURN(auto lock, store_.Lock(AttachmentStore::LockName(a)));
        auto now = store_.Load(a);  // it may have changed while we waited
        if (!now.ok() || !*now) {
            continue;
        }
        if (absl::Status s = Release(a, **now); !s.ok()) {
            failures.push_back(absl::StrFormat("%s/%s: %s", a.container_id, a.ifname, s.message()));
            continue;
        }
        lock.RemoveOnRelease();
    }
    // An IPAM plugin that knows GC cleans up what it alone knows of.
    if (!conf_.ipam.is_null() && conf_.cni_version >= "1.1.0") {
        std::string type = JsonString(conf_.ipam, "type");
        auto speaks = NegotiateVersion(type, req_.path, conf_.cni_version);
        if (speaks.ok() && *speaks >= "1.1.0") {
            PluginEnv env{.command = "GC", .path = req_.path};
            if (absl::Status s = ExecPlugin(type, env, conf_.raw).status(); !s.ok()) {
                failures.push_back(std::string(s.message()));
            }
        }
    }
    if (!failures.empty()) {
        return CniError(kDeviceFailure, absl::StrCat("GC could not release: ", absl::StrJoin(failures, "; ")));
    }
    return absl::OkStatus();
}

absl::Status Plugin::Status() {
    auto host = HostRtnl();
    if (!host.ok()) {
        return CniError(kNotAvailable, host.status().message());
    }
    if (conf_.mode == Mode::kSriov) {
        if (!host->GetLink(conf_.pf).ok()) {
            return CniError(kNotAvailable, absl::StrFormat("PF %s does not exist", conf_.pf));
        }
        auto vfs = ListVirtualFunctions(req_.sysfs, conf_.pf);
        if (!vfs.ok()) {
            return CniError(kNotAvailable, vfs.status().message());
        }
    } else if (!host->GetLink(conf_.master).ok()) {
        return CniError(kNotAvailable, absl::StrFormat("master %s does not exist", conf_.master));
    }
    if (!conf_.ipam.is_null()) {
        std::string type = JsonString(conf_.ipam, "type");
        auto speaks = NegotiateVersion(type, req_.path, conf_.cni_version);
        if (!speaks.ok()) {
            return CniError(kNotAvailable, absl::StrCat("ipam: ", speaks.status().message()));
        }
        if (*speaks >= "1.1.0") {
            PluginEnv env{.command = "STATUS", .path = req_.path};
            if (absl::Status s = ExecPlugin(type, env, conf_.raw).status(); !s.ok()) {
                return CniError(kNotAvailable, s.message());
            }
        }
    }
    return absl::OkStatus();
}

std::string ErrorJson(const std::string& version, const absl::Status& s) {
    Json e = {{"cniVersion", version.empty() ? "1.1.0" : version},
              {"code", CniCodeOf(s)},
              {"msg", std::string(s.message())}};
    return e.dump() + "\n";
}

}  // namespace

CniRequest RequestFromEnvironment(std::string config) {
    auto env = [](const char* name) {
        const char* v = getenv(name);
        return std::string(v != nullptr ? v : "");
    };
    CniRequest req;
    req.command = env("CNI_COMMAND");
    req.container_id = env("CNI_CONTAINERID");
    req.netns = env("CNI_NETNS");
    req.ifname = env("CNI_IFNAME");
    req.args = env("CNI_ARGS");
    req.path = env("CNI_PATH");
    req.config = std::move(config);
    if (std::string sysfs = env("ZEROHOP_CNI_SYSFS"); !sysfs.empty()) {
        req.sysfs = sysfs;
    }
    req.fail_at = env("ZEROHOP_CNI_FAIL_AT");
    req.crash_at = env("ZEROHOP_CNI_CRASH_AT");
    return req;
}

CniResponse RunCni(const CniRequest& req) {
    static const std::set<std::string> kCommands = {"ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS"};
    if (kCommands.count(req.command) == 0) {
        return {1, ErrorJson("", CniError(kInvalidEnvironment,
                                          req.command.empty()
                                              ? "CNI_COMMAND is not set (ADD, DEL, CHECK, GC, STATUS or VERSION)"
                                              : absl::StrFormat("CNI_COMMAND \"%s\" is not ADD, DEL, CHECK, GC, "
                                                                "STATUS or VERSION",
                                                                req.command)))};
    }
    auto conf = ParseNetConf(req.config, req.command);
    if (!conf.ok()) {
        return {1, ErrorJson("", conf.status())};
    }
    std::string version = conf->cni_version;
    if (req.command == "VERSION") {
        const auto& ours = SupportedVersions();
        bool known = std::find(ours.begin(), ours.end(), version) != ours.end();
        Json v = {{"cniVersion", known ? version : ours.back()}, {"supportedVersions", ours}};
        return {0, v.dump() + "\n"};
    }
    if (req.command == "GC" && version < "1.1.0") {
        return {1, ErrorJson(version, CniError(kIncompatibleVersion, "GC needs CNI version 1.1.0"))};
    }
    if (req.command == "STATUS" && version < "1.1.0") {
        return {1, ErrorJson(version, CniError(kIncompatibleVersion, "STATUS needs CNI version 1.1.0"))};
    }
    if (req.path.empty() && !conf->ipam.is_null()) {
        return {1, ErrorJson(version, CniError(kInvalidEnvironment, "CNI_PATH is empty: the IPAM plugin cannot be found"))};
    }
    auto store = AttachmentStore::Open(conf->state_dir);
    if (!store.ok()) {
        return {1, ErrorJson(version, store.status())};
    }
    auto host = NetNamespace::Current();
    if (!host.ok()) {
        return {1, ErrorJson(version, host.status())};
    }
    Plugin plugin(req, std::move(*conf), std::move(*store), std::move(*host));
    if (req.command == "ADD") {
        auto result = plugin.Add();
        if (!result.ok()) {
            return {1, ErrorJson(version, result.status())};
        }
        return {0, result->dump() + "\n"};
    }
    absl::Status s = req.command == "DEL"     ? plugin.Del()
                     : req.command == "CHECK" ? plugin.Check()
                     : req.command == "GC"    ? plugin.Gc()
                                              : plugin.Status();
    return s.ok() ? CniResponse{0, ""} : CniResponse{1, ErrorJson(version, s)};
}

}  // namespace zerohop::cni
