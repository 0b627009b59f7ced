#include "netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <rdma/rdma_netlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"

namespace zerohop::cni {
namespace {

absl::Status Errno(int err, std::string_view what) {
    return absl::Status(absl::ErrnoToStatusCode(err), absl::StrFormat("%s: %s", what, strerror(err)));
}

// Builds one netlink message: header, fixed body, attributes (nested ones by offset).
class MessageWriter {
public:
    MessageWriter(std::vector<char>& buf, uint16_t type, uint16_t flags) : buf_(buf) {
        buf_.assign(NLMSG_HDRLEN, 0);
        auto* h = reinterpret_cast<nlmsghdr*>(buf_.data());
        h->nlmsg_type = type;
        h->nlmsg_flags = NLM_F_REQUEST | flags;
    }
    // Goes on writing attributes at the end of a message begun elsewhere.
    static MessageWriter Append(std::vector<char>& buf) { return MessageWriter(buf); }

    template <typename T>
    T* Body() {
        size_t at = buf_.size();
        buf_.resize(at + NLMSG_ALIGN(sizeof(T)), 0);
        return reinterpret_cast<T*>(buf_.data() + at);
    }
    void Attr(uint16_t type, const void* data, size_t len) {
        size_t at = buf_.size();
        buf_.resize(at + RTA_ALIGN(RTA_LENGTH(len)), 0);
        auto* a = reinterpret_cast<rtattr*>(buf_.data() + at);
        a->rta_type = type;
        a->rta_len = RTA_LENGTH(len);
        if (len > 0) {
            memcpy(RTA_DATA(a), data, len);
        }
    }
    void U32(uint16_t type, uint32_t v) { Attr(type, &v, sizeof v); }
    void U8(uint16_t type, uint8_t v) { Attr(type, &v, sizeof v); }
    void Str(uint16_t type, const std::string& s) { Attr(type, s.c_str(), s.size() + 1); }
    size_t BeginNest(uint16_t type) {
        size_t at = buf_.size();
        Attr(type | NLA_F_NESTED, nullptr, 0);
        return at;
    }
    void EndNest(size_t at) {
        reinterpret_cast<rtattr*>(buf_.data() + at)->rta_len = static_cast<unsigned short>(buf_.size() - at);
    }

private:
    explicit MessageWriter(std::vector<char>& buf) : buf_(buf) {}
    std::vector<char>& buf_;
};

// Attributes of one message (or of a nested attribute), by type; later ones win.
std::vector<const rtattr*> ParseAttrs(const char* data, size_t len, size_t max_type) {
    std::vector<const rtattr*> out(max_type + 1, nullptr);
    auto* a = reinterpret_cast<const rtattr*>(data);
    int left = static_cast<int>(len);
    for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
        unsigned type = a->rta_type & NLA_TYPE_MASK;
        if (type <= max_type) {
            out[type] = a;
        }
    }
    return out;
}

size_t PayloadLen(const rtattr* a) { return RTA_PAYLOAD(a); }

uint32_t U32Of(const rtattr* a) {
    uint32_t v = 0;
    memcpy(&v, RTA_DATA(a), std::min(sizeof v, PayloadLen(a)));
    return v;
}

// Opens a socket of `protocol` with the calling thread in `ns`.
absl::StatusOr<int> SocketIn(const NetNamespace* ns, int protocol) {
    int fd = -1;
    auto open = [&]() -> absl::Status {
        fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
        if (fd < 0) {
            return Errno(errno, "netlink socket");
        }
        sockaddr_nl sa = {};
        sa.nl_family = AF_NETLINK;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
            int err = errno;
            ::close(fd);
            fd = -1;
            return Errno(err, "netlink bind");
        }
        int one = 1;
        ::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
        return absl::OkStatus();
    };
    absl::Status s = ns != nullptr ? InNamespace(*ns, open) : open();
    ZH_RETURN_IF_ERROR(s);
    return fd;
}

// Sends `msg` and collects answers until the acknowledgement (or NLMSG_DONE for a dump).
// The kernel's extended ack message, when there is one, joins the error.
absl::Status Exchange(int fd, uint32_t* seq, std::vector<char>& msg, const std::string& what,
                      std::vector<std::vector<char>>* answers) {
    auto* h = reinterpret_cast<nlmsghdr*>(msg.data());
    h->nlmsg_len = static_cast<uint32_t>(msg.size());
    h->nlmsg_seq = ++*seq;
    bool dump = (h->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
    if (::send(fd, msg.data(), msg.size(), 0) != static_cast<ssize_t>(msg.size())) {
        return Errno(errno, what + ": netlink send");
    }
    std::vector<char> buf(1 << 16);
    while (true) {
        ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return Errno(errno, what + ": netlink recv");
        }
        if (static_cast<size_t>(n) > buf.size()) {
            return absl::ResourceExhaustedError(what + ": netlink answer larger than 64 KiB");
        }
        size_t got = static_cast<size_t>(n);
        for (size_t off = 0; off + sizeof(nlmsghdr) <= got;) {
            auto* r = reinterpret_cast<nlmsghdr*>(buf.data() + off);
            if (r->nlmsg_len < sizeof(nlmsghdr) || r->nlmsg_len > got - off) {
                break;  // truncated: the kernel never sends this
            }
            off += NLMSG_ALIGN(r->nlmsg_len);
            if (r->nlmsg_seq != *seq) {
                continue;  // a late answer to an earlier request
            }
            if (r->nlmsg_type == NLMSG_DONE) {
                return absl::OkStatus();
            }
            if (r->nlmsg_type == NLMSG_ERROR) {
                auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(r));
                if (e->error == 0) {
                    return absl::OkStatus();
                }
                std::string text = what;
                // Extended ack: attributes after the echoed request header (capped).
                if (r->nlmsg_flags & NLM_F_ACK_TLVS) {
                    size_t off = sizeof(nlmsgerr);
                    if (!(r->nlmsg_flags & NLM_F_CAPPED)) {
                        off += e->msg.nlmsg_len - sizeof(nlmsghdr);
                    }
                    size_t total = r->nlmsg_len - NLMSG_HDRLEN;
                    if (off < total) {
                        auto attrs = ParseAttrs(static_cast<const char*>(NLMSG_DATA(r)) + off, total - off,
                                                NLMSGERR_ATTR_MSG);
                        if (attrs[NLMSGERR_ATTR_MSG] != nullptr) {
                            text += std::string(" (") + static_cast<const char*>(RTA_DATA(attrs[NLMSGERR_ATTR_MSG])) + ")";
                        }
                    }
                }
                return Errno(-e->error, text);
            }
            if (answers != nullptr) {
                answers->emplace_back(reinterpret_cast<char*>(r), reinterpret_cast<char*>(r) + r->nlmsg_len);
            }
            if (!dump && (h->nlmsg_flags & NLM_F_ACK) == 0) {
                return absl::OkStatus();  // a single answer, no acknowledgement asked for
            }
        }
    }
}

LinkInfo ParseLink(const std::vector<char>& m) {
    auto* h = reinterpret_cast<const nlmsghdr*>(m.data());
    auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
    LinkInfo link;
    link.index = ifi->ifi_index;
    link.flags = ifi->ifi_flags;
    auto attrs = ParseAttrs(reinterpret_cast<const char*>(IFLA_RTA(ifi)), IFLA_PAYLOAD(h), IFLA_MAX);
    if (attrs[IFLA_IFNAME] != nullptr) {
        link.name = static_cast<const char*>(RTA_DATA(attrs[IFLA_IFNAME]));
    }
    if (attrs[IFLA_ADDRESS] != nullptr && PayloadLen(attrs[IFLA_ADDRESS]) == 6) {
        memcpy(link.mac.bytes, RTA_DATA(attrs[IFLA_ADDRESS]), 6);
    }
    if (attrs[IFLA_MTU] != nullptr) {
        link.mtu = U32Of(attrs[IFLA_MTU]);
    }
    if (attrs[IFLA_LINK] != nullptr) {
        link.parent_index = static_cast<int>(U32Of(attrs[IFLA_LINK]));
    }
    if (attrs[IFLA_LINKINFO] != nullptr) {
        auto info = ParseAttrs(static_cast<const char*>(RTA_DATA(attrs[IFLA_LINKINFO])),
                               PayloadLen(attrs[IFLA_LINKINFO]), IFLA_INFO_MAX);
        if (info[IFLA_INFO_KIND] != nullptr) {
            link.kind = static_cast<const char*>(RTA_DATA(info[IFLA_INFO_KIND]));
        }
    }
    if (attrs[IFLA_VFINFO_LIST] != nullptr) {
        auto* a = static_cast<const rtattr*>(RTA_DATA(attrs[IFLA_VFINFO_LIST]));
        int left = static_cast<int>(PayloadLen(attrs[IFLA_VFINFO_LIST]));
        for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
            if ((a->rta_type & NLA_TYPE_MASK) != IFLA_VF_INFO) {
                continue;
            }
            auto vf = ParseAttrs(static_cast<const char*>(RTA_DATA(a)), PayloadLen(a), IFLA_VF_MAX);
            VfState st;
            if (vf[IFLA_VF_MAC] != nullptr && PayloadLen(vf[IFLA_VF_MAC]) >= sizeof(ifla_vf_mac)) {
                auto* mac = static_cast<const ifla_vf_mac*>(RTA_DATA(vf[IFLA_VF_MAC]));
                st.index = mac->vf;
                memcpy(st.mac.bytes, mac->mac, 6);
            }
            if (vf[IFLA_VF_VLAN] != nullptr && PayloadLen(vf[IFLA_VF_VLAN]) >= sizeof(ifla_vf_vlan)) {
                auto* v = static_cast<const ifla_vf_vlan*>(RTA_DATA(vf[IFLA_VF_VLAN]));
                st.vlan = v->vlan;
                st.qos = v->qos;
            }
            if (vf[IFLA_VF_SPOOFCHK] != nullptr && PayloadLen(vf[IFLA_VF_SPOOFCHK]) >= sizeof(ifla_vf_spoofchk)) {
                auto* v = static_cast<const ifla_vf_spoofchk*>(RTA_DATA(vf[IFLA_VF_SPOOFCHK]));
                if (v->setting != static_cast<uint32_t>(-1)) {
                    st.spoof_check = v->setting != 0;
                }
            }
            if (vf[IFLA_VF_TRUST] != nullptr && PayloadLen(vf[IFLA_VF_TRUST]) >= sizeof(ifla_vf_trust)) {
                auto* v = static_cast<const ifla_vf_trust*>(RTA_DATA(vf[IFLA_VF_TRUST]));
                if (v->setting != static_cast<uint32_t>(-1)) {
                    st.trust = v->setting != 0;
                }
            }
            link.vfs.push_back(st);
        }
    }
    return link;
}

}  // namespace

// ---- NetNamespace ----

NetNamespace& NetNamespace::operator=(NetNamespace&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = o.fd_;
        o.fd_ = -1;
    }
    return *this;
}

NetNamespace::~NetNamespace() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

absl::StatusOr<NetNamespace> NetNamespace::Current() { return Open("/proc/thread-self/ns/net"); }

absl::StatusOr<NetNamespace> NetNamespace::Open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return Errno(errno, "network namespace " + path);
    }
    NetNamespace ns(fd);
    // setns(fd, CLONE_NEWNET) would refuse anything else; say so before anyone tries.
    int cur = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (cur < 0) {
        return Errno(errno, "/proc/thread-self/ns/net");
    }
    struct stat a = {}, b = {};
    bool same_fs = ::fstat(fd, &a) == 0 && ::fstat(cur, &b) == 0 && a.st_dev == b.st_dev;
    ::close(cur);
    if (!same_fs) {
        return absl::InvalidArgumentError(absl::StrFormat("%s is not a network namespace", path));
    }
    return ns;
}

absl::StatusOr<NetNamespace> NetNamespace::CreateAnonymous() {
    ZH_ASSIGN_OR_RETURN(auto here, Current());
    if (::unshare(CLONE_NEWNET) != 0) {
        return Errno(errno, "unshare(CLONE_NEWNET)");
    }
    auto created = Current();
    if (::setns(here.fd(), CLONE_NEWNET) != 0) {
        // The thread is stranded in an empty namespace: nothing after this can be right.
        perror("zerohop-cni: setns back from a new namespace");
        abort();
    }
    return created;
}

uint64_t NetNamespace::id() const {
    struct stat st = {};
    return ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

absl::Status InNamespace(const NetNamespace& ns, const std::function<absl::Status()>& fn) {
    ZH_ASSIGN_OR_RETURN(auto here, NetNamespace::Current());
    if (::setns(ns.fd(), CLONE_NEWNET) != 0) {
        return Errno(errno, "setns");
    }
    absl::Status s = fn();
    if (::setns(here.fd(), CLONE_NEWNET) != 0) {
        perror("zerohop-cni: setns back");
        abort();
    }
    return s;
}

// ---- addresses ----

absl::StatusOr<MacAddress> MacAddress::Parse(absl::string_view text) {
    std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
    MacAddress mac;
    if (parts.size() != 6) {
        return absl::InvalidArgumentError(absl::StrFormat("\"%s\" is not a MAC address (aa:bb:cc:dd:ee:ff)", text));
    }
    for (int i = 0; i < 6; ++i) {
        uint32_t v = 0;
        if (parts[i].size() != 2 || !absl::SimpleHexAtoi(parts[i], &v)) {
            return absl::InvalidArgumentError(absl::StrFormat("\"%s\" is not a MAC address (aa:bb:cc:dd:ee:ff)", text));
        }
        mac.bytes[i] = static_cast<uint8_t>(v);
    }
    if (mac.bytes[0] & 1) {
        return absl::InvalidArgumentError(absl::StrFormat("%s is a multicast address, not an interface's", text));
    }
    return mac;
}

std::string MacAddress::ToString() const {
    return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2], bytes[3], bytes[4],
                           bytes[5]);
}

absl::StatusOr<IpPrefix> IpPrefix::Parse(absl::string_view text) {
    IpPrefix p;
    std::string addr(text);
    size_t slash = addr.find('/');
    std::string len;
    if (slash != std::string::npos) {
        len = addr.substr(slash + 1);
        addr.resize(slash);
    }
    if (::inet_pton(AF_INET, addr.c_str(), p.bytes) == 1) {
        p.family = AF_INET;
    } else if (::inet_pton(AF_INET6, addr.c_str(), p.bytes) == 1) {
        p.family = AF_INET6;
    } else {
        return absl::InvalidArgumentError(absl::StrFormat("\"%s\" is not an IP address", text));
    }
    int max = p.family == AF_INET ? 32 : 128;
    p.prefix = max;
    if (slash != std::string::npos && (!absl::SimpleAtoi(len, &p.prefix) || p.prefix < 0 || p.prefix > max)) {
        return absl::InvalidArgumentError(absl::StrFormat("\"%s\": bad prefix length", text));
    }
    return p;
}

std::string IpPrefix::ToString(bool with_prefix) const {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family, bytes, buf, sizeof buf);
    return with_prefix ? absl::StrFormat("%s/%d", buf, prefix) : std::string(buf);
}

bool LinkInfo::up() const { return (flags & IFF_UP) != 0; }

// ---- Rtnl ----

Rtnl::~Rtnl() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

absl::StatusOr<Rtnl> Rtnl::In(const NetNamespace& ns) {
    ZH_ASSIGN_OR_RETURN(auto fd, SocketIn(&ns, NETLINK_ROUTE));
    return Rtnl(fd);
}

absl::Status Rtnl::Call(std::vector<char>& msg, const char* what, std::vector<std::vector<char>>* answers) {
    return Exchange(fd_, &seq_, msg, what, answers);
}

absl::StatusOr<LinkInfo> Rtnl::GetLink(int index) {
    std::vector<char> msg;
    MessageWriter w(msg, RTM_GETLINK, 0);
    w.Body<ifinfomsg>()->ifi_index = index;
    w.U32(IFLA_EXT_MASK, RTEXT_FILTER_VF);
    std::vector<std::vector<char>> answers;
    absl::Status s = Call(msg, "get link", &answers);
    if (absl::IsNotFound(s)) {
        return absl::NotFoundError(absl::StrFormat("no link with index %d", index));
    }
    ZH_RETURN_IF_ERROR(s);
    if (answers.empty()) {
        return absl::InternalError("get link: no answer");
    }
    return ParseLink(answers[0]);
}

absl::StatusOr<LinkInfo> Rtnl::GetLink(const std::string& name) {
    if (name.empty() || name.size() >= IFNAMSIZ) {
        return absl::InvalidArgumentError(absl::StrFormat("\"%s\" is not a link name", name));
    }
    std::vector<char> msg;
    MessageWriter w(msg, RTM_GETLINK, 0);
    w.Body<ifinfomsg>();
    w.Str(IFLA_IFNAME, name);
    w.U32(IFLA_EXT_MASK, RTEXT_FILTER_VF);
    std::vector<std::vector<char>> answers;
    absl::Status s = Call(msg, "get link", &answers);
    if (absl::IsNotFound(s)) {
        return absl::NotFoundError(absl::StrFormat("no link named %s", name));
    }
    ZH_RETURN_IF_ERROR(s);
    if (answers.empty()) {
        return absl::InternalError("get link: no answer");
    }
    return ParseLink(answers[0]);
}

absl::StatusOr<std::vector<LinkInfo>> Rtnl::ListLinks() {
    std::vector<char> msg;
    MessageWriter w(msg, RTM_GETLINK, NLM_F_DUMP);
    w.Body<ifinfomsg>();
    std::vector<std::vector<char>> answers;
    ZH_RETURN_IF_ERROR(Call(msg, "list links", &answers));
    std::vector<LinkInfo> links;
    for (const auto& a : answers) {
        if (reinterpret_cast<const nlmsghdr*>(a.data())->nlmsg_type == RTM_NEWLINK) {
            links.push_back(ParseLink(a));
        }
    }
    return links;
}

absl::Status Rtnl::ChangeLink(int index, const char* what, const std::function<void(std::vector<char>&)>& attrs,
                              uint32_t flags, uint32_t change) {
    std::vector<char> msg;
    MessageWriter w(msg, RTM_NEWLINK, NLM_F_ACK);
    auto* ifi = w.Body<ifinfomsg>();
    ifi->ifi_index = index;
    ifi->ifi_flags = flags;
    ifi->ifi_change = change;
    attrs(msg);
    return Call(msg, what, nullptr);
}

absl::Status Rtnl::SetName(int index, const std::string& name) {
    if (name.empty() || name.size() >= IFNAMSIZ) {
        return absl::InvalidArgumentError(absl::StrFormat("\"%s\" is not a link name", name));
    }
    return ChangeLink(index, "rename link", [&](std::vector<char>& m) {
        MessageWriter::Append(m).Str(IFLA_IFNAME, name);
    });
}

absl::Status Rtnl::SetMac(int index, const MacAddress& mac) {
    return ChangeLink(index, "set MAC address",
                      [&](std::vector<char>& m) { MessageWriter::Append(m).Attr(IFLA_ADDRESS, mac.bytes, 6); });
}

absl::Status Rtnl::SetMtu(int index, uint32_t mtu) {
    return ChangeLink(index, "set MTU", [&](std::vector<char>& m) { MessageWriter::Append(m).U32(IFLA_MTU, mtu); });
}

absl::Status Rtnl::SetUp(int index, bool up) {
    return ChangeLink(index, up ? "set link up" : "set link down", [](std::vector<char>&) {}, up ? IFF_UP : 0, IFF_UP);
}

absl::Status Rtnl::MoveTo(int index, int netns_fd) {
    return ChangeLink(index, "move link to another namespace",
                      [&](std::vector<char>& m) { MessageWriter::Append(m).U32(IFLA_NET_NS_FD, netns_fd); });
}

absl::Status Rtnl::MoveTo(int index, int netns_fd, const std::string& new_name) {
    return ChangeLink(index, "move and rename link", [&](std::vector<char>& m) {
        auto w = MessageWriter::Append(m);
        w.U32(IFLA_NET_NS_FD, netns_fd);
        w.Str(IFLA_IFNAME, new_name);
    });
}

absl::Status Rtnl::SetVf(int pf_index, const VfSettings& vf) {
    return ChangeLink(pf_index, "set VF through its PF", [&](std::vector<char>& m) {
        auto w = MessageWriter::Append(m);
        size_t list = w.BeginNest(IFLA_VFINFO_LIST);
        size_t info = w.BeginNest(IFLA_VF_INFO);
        if (vf.mac) {
            ifla_vf_mac v = {};
            v.vf = vf.index;
            memcpy(v.mac, vf.mac->bytes, 6);
            w.Attr(IFLA_VF_MAC, &v, sizeof v);
        }
        if (vf.vlan) {
            ifla_vf_vlan v = {vf.index, *vf.vlan, vf.qos};
            w.Attr(IFLA_VF_VLAN, &v, sizeof v);
        }
        if (vf.spoof_check) {
            ifla_vf_spoofchk v = {vf.index, *vf.spoof_check ? 1u : 0u};
            w.Attr(IFLA_VF_SPOOFCHK, &v, sizeof v);
        }
        if (vf.trust) {
            ifla_vf_trust v = {vf.index, *vf.trust ? 1u : 0u};
            w.Attr(IFLA_VF_TRUST, &v, sizeof v);
        }
        w.EndNest(info);
        w.EndNest(list);
    });
}

absl::Status Rtnl::AddMacvlan(const MacvlanSpec& spec) {
    std::vector<char> msg;
    MessageWriter w(msg, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    w.Body<ifinfomsg>();
    w.Str(IFLA_IFNAME, spec.name);
    w.U32(IFLA_LINK, static_cast<uint32_t>(spec.master_index));
    if (spec.mtu != 0) {
        w.U32(IFLA_MTU, spec.mtu);
    }
    if (spec.mac) {
        w.Attr(IFLA_ADDRESS, spec.mac->bytes, 6);
    }
    if (spec.netns_fd >= 0) {
        w.U32(IFLA_NET_NS_FD, static_cast<uint32_t>(spec.netns_fd));
    }
    size_t info = w.BeginNest(IFLA_LINKINFO);
    w.Str(IFLA_INFO_KIND, "macvlan");
    size_t data = w.BeginNest(IFLA_INFO_DATA);
    w.U32(IFLA_MACVLAN_MODE, spec.mode);
    w.EndNest(data);
    w.EndNest(info);
    return Call(msg, "create macvlan", nullptr);
}

absl::Status Rtnl::DeleteLink(int index) {
    std::vector<char> msg;
    MessageWriter w(msg, RTM_DELLINK, NLM_F_ACK);
    w.Body<ifinfomsg>()->ifi_index = index;
    return Call(msg, "delete link", nullptr);
}

absl::Status Rtnl::AddAddress(int index, const IpPrefix& address) {
    std::vector<char> msg;
    MessageWriter w(msg, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    auto* ifa = w.Body<ifaddrmsg>();
    ifa->ifa_family = static_cast<uint8_t>(address.family);
    ifa->ifa_prefixlen = static_cast<uint8_t>(address.prefix);
    ifa->ifa_index = static_cast<uint32_t>(index);
    w.Attr(IFA_LOCAL, address.bytes, address.size());
    w.Attr(IFA_ADDRESS, address.bytes, address.size());
    if (address.family == AF_INET6) {
        w.U32(IFA_FLAGS, IFA_F_NODAD);  // usable at once: the pod starts right after ADD
    }
    return Call(msg, "add address", nullptr);
}

absl::StatusOr<std::vector<IpPrefix>> Rtnl::ListAddresses(int index) {
    std::vector<char> msg;
    MessageWriter w(msg, RTM_GETADDR, NLM_F_DUMP);
    w.Body<ifaddrmsg>();
    std::vector<std::vector<char>> answers;
    ZH_RETURN_IF_ERROR(Call(msg, "list addresses", &answers));
    std::vector<IpPrefix> out;
    for (const auto& a : answers) {
        auto* h = reinterpret_cast<const nlmsghdr*>(a.data());
        if (h->nlmsg_type != RTM_NEWADDR) {
            continue;
        }
        auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
        if (static_cast<int>(ifa->ifa_index) != index) {
            continue;
        }
        auto attrs = ParseAttrs(reinterpret_cast<const char*>(IFA_RTA(ifa)), IFA_PAYLOAD(h), IFA_MAX);
        const rtattr* addr = attrs[IFA_LOCAL] != nullptr ? attrs[IFA_LOCAL] : attrs[IFA_ADDRESS];
        if (addr == nullptr) {
            continue;
        }
        IpPrefix p;
        p.family = ifa->ifa_family;
        p.prefix = ifa->ifa_prefixlen;
        memcpy(p.bytes, RTA_DATA(addr), std::min(PayloadLen(addr), sizeof p.bytes));
        out.push_back(p);
    }
    return out;
}

absl::Status Rtnl::AddRoute(const RouteSpec& route) {
    std::vector<char> msg;
    MessageWriter w(msg, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    auto* rt = w.Body<rtmsg>();
    rt->rtm_family = static_cast<uint8_t>(route.dst.family);
    rt->rtm_dst_len = static_cast<uint8_t>(route.dst.prefix);
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_BOOT;
    rt->rtm_scope = route.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
    rt->rtm_type = RTN_UNICAST;
    if (route.dst.prefix > 0) {
        w.Attr(RTA_DST, route.dst.bytes, route.dst.size());
    }
    if (route.gateway) {
        w.Attr(RTA_GATEWAY, route.gateway->bytes, route.gateway->size());
    }
    if (route.link_index > 0) {
        w.U32(RTA_OIF, static_cast<uint32_t>(route.link_index));
    }
    return Call(msg, "add route", nullptr);
}

// ---- RdmaNetlink ----

RdmaNetlink::~RdmaNetlink() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

absl::StatusOr<RdmaNetlink> RdmaNetlink::Open() {
    auto fd = SocketIn(nullptr, NETLINK_RDMA);
    if (!fd.ok()) {
        return absl::UnavailableError(absl::StrFormat("the kernel has no RDMA netlink (%s)", fd.status().message()));
    }
    return RdmaNetlink(*fd);
}

absl::Status RdmaNetlink::Call(std::vector<char>& msg, const char* what, std::vector<char>* answer) {
    std::vector<std::vector<char>> answers;
    absl::Status s = Exchange(fd_, &seq_, msg, what, answer != nullptr ? &answers : nullptr);
    if (s.ok() && answer != nullptr) {
        if (answers.empty()) {
            return absl::InternalError(absl::StrFormat("%s: no answer", what));
        }
        *answer = std::move(answers[0]);
    }
    return s;
}

absl::StatusOr<bool> RdmaNetlink::ExclusiveNetns() {
    std::vector<char> msg;
    MessageWriter w(msg, RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, RDMA_NLDEV_CMD_SYS_GET), 0);
    std::vector<char> answer;
    ZH_RETURN_IF_ERROR(Call(msg, "RDMA system mode", &answer));
    auto* h = reinterpret_cast<const nlmsghdr*>(answer.data());
    auto attrs = ParseAttrs(static_cast<const char*>(NLMSG_DATA(h)), h->nlmsg_len - NLMSG_HDRLEN,
                            RDMA_NLDEV_SYS_ATTR_NETNS_MODE);
    const rtattr* mode = attrs[RDMA_NLDEV_SYS_ATTR_NETNS_MODE];
    // 1: shared (every namespace sees every device), 0: exclusive.
    return mode != nullptr && *static_cast<const uint8_t*>(RTA_DATA(mode)) == 0;
}

absl::StatusOr<uint32_t> RdmaNetlink::DeviceIndex(const std::string& name) {
    std::vector<char> msg;
    MessageWriter w(msg, RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, RDMA_NLDEV_CMD_GET), NLM_F_DUMP);
    std::vector<std::vector<char>> answers;
    ZH_RETURN_IF_ERROR(Exchange(fd_, &seq_, msg, "list RDMA devices", &answers));
    for (const auto& a : answers) {
        auto* h = reinterpret_cast<const nlmsghdr*>(a.data());
        auto attrs = ParseAttrs(static_cast<const char*>(NLMSG_DATA(h)), h->nlmsg_len - NLMSG_HDRLEN,
                                RDMA_NLDEV_ATTR_DEV_NAME);
        if (attrs[RDMA_NLDEV_ATTR_DEV_NAME] != nullptr && attrs[RDMA_NLDEV_ATTR_DEV_INDEX] != nullptr &&
            name == static_cast<const char*>(RTA_DATA(attrs[RDMA_NLDEV_ATTR_DEV_NAME]))) {
            return U32Of(attrs[RDMA_NLDEV_ATTR_DEV_INDEX]);
        }
    }
    return absl::NotFoundError(absl::StrFormat("no RDMA device %s in this namespace", name));
}

absl::Status RdmaNetlink::MoveDevice(uint32_t index, int netns_fd) {
    std::vector<char> msg;
    MessageWriter w(msg, RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, RDMA_NLDEV_CMD_SET), NLM_F_ACK);
    w.U32(RDMA_NLDEV_ATTR_DEV_INDEX, index);
    w.U32(RDMA_NLDEV_NET_NS_FD, static_cast<uint32_t>(netns_fd));
    return Call(msg, "move RDMA device", nullptr);
}

}  // namespace zerohop::cni
