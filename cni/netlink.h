// Network namespaces and the netlink requests zerohop-cni makes in them.
//
// A Rtnl is a route-netlink socket created inside one network namespace: every request on
// it acts there, whatever namespace the calling thread is in later. Links are named by
// index (an index is only meaningful in the namespace it came from).
//
//   auto pod = NetNamespace::Open("/var/run/netns/pod1");
//   auto rtnl = Rtnl::In(*pod);
//   auto link = rtnl->GetLink("net1");
//   rtnl->SetUp(link->index, true);
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerohop::cni {

// An open network namespace (a descriptor of its nsfs inode): the namespace lives at least as
// long as this object.
class NetNamespace {
public:
    NetNamespace() = default;
    NetNamespace(NetNamespace&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    NetNamespace& operator=(NetNamespace&& o) noexcept;
    NetNamespace(const NetNamespace&) = delete;
    NetNamespace& operator=(const NetNamespace&) = delete;
    ~NetNamespace();

    // The namespace of the calling thread.
    static absl::StatusOr<NetNamespace> Current();
    // A namespace by path (/var/run/netns/NAME, /proc/PID/ns/net); NotFound if there is
    // none, InvalidArgument if the path is not a network namespace.
    static absl::StatusOr<NetNamespace> Open(const std::string& path);
    // A new, empty namespace that nothing else can see; it goes away with this object (and
    // takes virtual devices left in it with it; physical ones go back to the host's).
    static absl::StatusOr<NetNamespace> CreateAnonymous();

    int fd() const { return fd_; }
    // The namespace's inode: two objects name the same namespace when these are equal.
    uint64_t id() const;

private:
    explicit NetNamespace(int fd) : fd_(fd) {}
    int fd_ = -1;
};

// Runs `fn` with the calling thread inside `ns`, then moves it back.
absl::Status InNamespace(const NetNamespace& ns, const std::function<absl::Status()>& fn);

struct MacAddress {
    uint8_t bytes[6] = {};
    static absl::StatusOr<MacAddress> Parse(absl::string_view text);  // "aa:bb:cc:dd:ee:ff"
    std::string ToString() const;
    bool operator==(const MacAddress&) const = default;
};

// An IPv4 or IPv6 address with a prefix length ("10.1.0.5/24", "fd00::5/64").
struct IpPrefix {
    int family = 0;  // AF_INET or AF_INET6
    uint8_t bytes[16] = {};
    int prefix = 0;
    static absl::StatusOr<IpPrefix> Parse(absl::string_view text);  // with or without "/len"
    size_t size() const { return family == 2 /*AF_INET*/ ? 4 : 16; }
    std::string ToString(bool with_prefix = true) const;
    bool operator==(const IpPrefix&) const = default;
};

// A VF as its PF reports it (IFLA_VFINFO_LIST).
struct VfState {
    uint32_t index = 0;
    MacAddress mac;
    uint32_t vlan = 0;
    uint32_t qos = 0;
    std::optional<bool> spoof_check;  // absent when the driver does not report it
    std::optional<bool> trust;
};

struct LinkInfo {
    int index = 0;
    std::string name;
    MacAddress mac;
    uint32_t mtu = 0;
    uint32_t flags = 0;           // IFF_*
    std::string kind;             // "macvlan", "veth", ... ("" for a physical device)
    int parent_index = 0;         // IFLA_LINK (a macvlan's master)
    std::vector<VfState> vfs;     // a PF's VFs
    bool up() const;
};

// Settings for one VF, made through its PF; unset fields are left as they are.
struct VfSettings {
    uint32_t index = 0;
    std::optional<MacAddress> mac;
    std::optional<uint32_t> vlan;
    uint32_t qos = 0;
    std::optional<bool> spoof_check;
    std::optional<bool> trust;
};

struct MacvlanSpec {
    std::string name;
    int master_index = 0;
    uint32_t mode = 4;  // MACVLAN_MODE_BRIDGE
    uint32_t mtu = 0;   // 0: the master's
    std::optional<MacAddress> mac;
    int netns_fd = -1;  // created directly in this namespace (-1: the socket's)
};

struct RouteSpec {
    IpPrefix dst;                    // 0.0.0.0/0 for a default route
    std::optional<IpPrefix> gateway;  // prefix ignored
    int link_index = 0;
};

class Rtnl {
public:
    Rtnl(Rtnl&& o) noexcept : fd_(o.fd_), seq_(o.seq_) { o.fd_ = -1; }
    Rtnl& operator=(Rtnl&&) = delete;
    Rtnl(const Rtnl&) = delete;
    ~Rtnl();

    static absl::StatusOr<Rtnl> In(const NetNamespace& ns);

    // NotFound when there is no such link.
    absl::StatusOr<LinkInfo> GetLink(const std::string& name);
    absl::StatusOr<LinkInfo> GetLink(int index);
    absl::StatusOr<std::vector<LinkInfo>> ListLinks();

    absl::Status SetName(int index, const std::string& name);
    absl::Status SetMac(int index, const MacAddress& mac);
    absl::Status SetMtu(int index, uint32_t mtu);
    absl::Status SetUp(int index, bool up);
    // Moves the link into `netns_fd`'s namespace; its index there may differ.
    absl::Status MoveTo(int index, int netns_fd);
    // Moves it and renames it in the same request (the name is checked in the target).
    absl::Status MoveTo(int index, int netns_fd, const std::string& new_name);
    absl::Status SetVf(int pf_index, const VfSettings& vf);
    absl::Status AddMacvlan(const MacvlanSpec& spec);
    absl::Status DeleteLink(int index);
    absl::Status AddAddress(int index, const IpPrefix& address);
    absl::StatusOr<std::vector<IpPrefix>> ListAddresses(int index);
    absl::Status AddRoute(const RouteSpec& route);

private:
    explicit Rtnl(int fd) : fd_(fd) {}
    // Sends one request and waits for its acknowledgement (or its answers, for dumps).
    absl::Status Call(std::vector<char>& msg, const char* what, std::vector<std::vector<char>>* answers = nullptr);
    absl::Status ChangeLink(int index, const char* what, const std::function<void(std::vector<char>&)>& attrs,
                            uint32_t flags = 0, uint32_t change = 0);

    int fd_ = -1;
    uint32_t seq_ = 0;
};

// The RDMA subsystem (NETLINK_RDMA). Unavailable where the kernel has none.
class RdmaNetlink {
public:
    RdmaNetlink(RdmaNetlink&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    RdmaNetlink(const RdmaNetlink&) = delete;
    ~RdmaNetlink();
    static absl::StatusOr<RdmaNetlink> Open();
    // Whether RDMA devices belong to one namespace each (`rdma system set netns exclusive`).
    absl::StatusOr<bool> ExclusiveNetns();
    absl::StatusOr<uint32_t> DeviceIndex(const std::string& name);
    absl::Status MoveDevice(uint32_t index, int netns_fd);

private:
    explicit RdmaNetlink(int fd) : fd_(fd) {}
    absl::Status Call(std::vector<char>& msg, const char* what, std::vector<char>* answer);
    int fd_ = -1;
    uint32_t seq_ = 0;
};

}  // namespace zerohop::cni
