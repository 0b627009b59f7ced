// libFuzzer target: FUSE requests as the kernel sends them, into a real zerohop-fuse (its
// libfuse session, its /dev/fuse hooks and request journal, its file system) over a real
// in-process zerohopd.
//
// The "device" is one end of a SOCK_SEQPACKET socketpair (FuseOptions::device_fd): a
// message per request and per answer, as /dev/fuse. After a real INIT, each input becomes
// one request: an opcode (the ones the kernel sends, or any number), a node id (the root,
// one the file system handed out earlier, or any), and the input's bytes as the body,
// NUL-terminated as the kernel terminates names. The file system must answer every request
// that takes an answer, in time and with its unique id, and never crash.

#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fuse_fs.h"
#include "fuzz_daemon.h"
#include "wire/codec.h"

namespace {

zerohop::fuse::FuseFs* g_fs = nullptr;  // never destroyed, like the daemon
int g_kernel = -1;                     // our end of the "device"
uint64_t g_unique = 1;
std::vector<uint64_t> g_nodes = {1};   // node ids the file system handed out (1: the root)
std::vector<uint64_t> g_handles = {0};
uint32_t g_max_answer = 0;  // the largest answer the socket carries (see LLVMFuzzerInitialize)

// The largest fixed part of a request the kernel sends (fuse_setattr_in: 88 bytes), rounded up.
constexpr size_t kFixedPart = 128;

// The opcodes the kernel sends (not INIT or DESTROY: the session's own).
constexpr uint32_t kOps[] = {
    FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR, FUSE_SETATTR, FUSE_READLINK, FUSE_SYMLINK, FUSE_MKNOD,
    FUSE_MKDIR, FUSE_UNLINK, FUSE_RMDIR, FUSE_RENAME, FUSE_LINK, FUSE_OPEN, FUSE_READ, FUSE_WRITE,
    FUSE_STATFS, FUSE_RELEASE, FUSE_FSYNC, FUSE_SETXATTR, FUSE_GETXATTR, FUSE_LISTXATTR,
    FUSE_REMOVEXATTR, FUSE_FLUSH, FUSE_OPENDIR, FUSE_READDIR, FUSE_RELEASEDIR, FUSE_FSYNCDIR,
    FUSE_GETLK, FUSE_SETLK, FUSE_SETLKW, FUSE_ACCESS, FUSE_CREATE, FUSE_INTERRUPT, FUSE_BMAP,
    FUSE_IOCTL, FUSE_POLL, FUSE_BATCH_FORGET, FUSE_FALLOCATE, FUSE_READDIRPLUS, FUSE_RENAME2,
    FUSE_LSEEK, FUSE_COPY_FILE_RANGE,
};

bool Answered(uint32_t opcode) {
    return opcode != FUSE_FORGET && opcode != FUSE_BATCH_FORGET && opcode != FUSE_INTERRUPT &&
           opcode != FUSE_NOTIFY_REPLY;
}

// How long an answer may take before the file system counts as hung: 30 s, or
// $ZH_FUZZ_ANSWER_SECONDS (a run at low priority on a busy machine can be starved of the CPU
// for longer). Syncs (FSYNC, FSYNCDIR: a syncfs of the store's file system) take as long as
// the machine's dirty pages take to write, seconds on a shared disk: four times as long.
int AnswerSeconds(uint32_t opcode) {
    static const int seconds = [] {
        const char* v = getenv("ZH_FUZZ_ANSWER_SECONDS");
        return v != nullptr && atoi(v) > 0 ? atoi(v) : 30;
    }();
    return opcode == FUSE_FSYNC || opcode == FUSE_FSYNCDIR ? 4 * seconds : seconds;
}

// The sockets and eventfds the daemon and the file system hold for their whole lives (the
// listener, the session, the doorbells, the device), by number: an input that makes one of
// them close a number it does not own shows here as a number that now names something else.
std::vector<std::pair<int, std::string>> g_lifelong;

std::string DescribeFd(int fd) {
    char target[256];
    ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), target, sizeof target - 1);
    return n > 0 ? std::string(target, static_cast<size_t>(n)) : std::string("(closed)");
}

void RecordLifelongFds() {
    for (int fd = 0; fd < 1024; ++fd) {
        std::string what = DescribeFd(fd);
        if (what.rfind("socket:", 0) == 0 || what == "anon_inode:[eventfd]") {
            g_lifelong.emplace_back(fd, what);
        }
    }
}

void CheckLifelongFds() {
    for (const auto& [fd, what] : g_lifelong) {
        if (std::string now = DescribeFd(fd); now != what) {
            fprintf(stderr, "fuse_request_fuzzer: descriptor %d was %s and is now %s\n", fd, what.c_str(), now.c_str());
            abort();
        }
    }
}

// Sends one request; with `wait`, reads until its answer (others are skipped) and returns it.
std::optional<std::string> Send(uint32_t opcode, uint64_t nodeid, const std::string& body, bool wait) {
    fuse_in_header h = {};
    h.len = static_cast<uint32_t>(sizeof h + body.size());
    h.opcode = opcode;
    h.unique = g_unique++;
    h.nodeid = nodeid;
    h.pid = static_cast<uint32_t>(getpid());
    std::string msg(reinterpret_cast<const char*>(&h), sizeof h);
    msg += body;
    if (::send(g_kernel, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) {
        fprintf(stderr, "fuse_request_fuzzer: the file system stopped reading requests\n");
        abort();
    }
    if (!wait) {
        return std::nullopt;
    }
    static std::string buf(g_max_answer + 4096, '\0');  // the largest answer asked for, and then some
    for (;;) {
        struct pollfd p = {.fd = g_kernel, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, AnswerSeconds(opcode) * 1000) != 1) {
            fprintf(stderr, "fuse_request_fuzzer: request %llu (opcode %u) was not answered in %d s\n",
                    static_cast<unsigned long long>(h.unique), opcode, AnswerSeconds(opcode));
            CheckLifelongFds();
            if (getenv("ZH_FUZZ_HANG_PAUSE") != nullptr) {
                // For a debugger to attach and see every thread where the hang left it.
                fprintf(stderr, "fuse_request_fuzzer: pid %d paused for a debugger\n", static_cast<int>(getpid()));
                for (;;) {
                    ::pause();
                }
            }
            abort();
        }
        ssize_t n = ::recv(g_kernel, buf.data(), buf.size(), 0);
        if (n < static_cast<ssize_t>(sizeof(fuse_out_header))) {
            fprintf(stderr, "fuse_request_fuzzer: an answer of %zd bytes\n", n);
            abort();
        }
        fuse_out_header out;
        std::memcpy(&out, buf.data(), sizeof out);
        if (out.len != static_cast<uint32_t>(n)) {
            fprintf(stderr, "fuse_request_fuzzer: an answer says %u bytes and has %zd\n", out.len, n);
            abort();
        }
        if (out.unique == h.unique) {
            return buf.substr(0, static_cast<size_t>(n));
        }
    }
}

// Remembers the node ids and handles the answers hand out, so later inputs reach them.
void Learn(uint32_t opcode, const std::string& answer) {
    fuse_out_header out;
    std::memcpy(&out, answer.data(), sizeof out);
    if (out.error != 0) {
        return;
    }
    const char* body = answer.data() + sizeof out;
    size_t size = answer.size() - sizeof out;
    if ((opcode == FUSE_LOOKUP || opcode == FUSE_MKDIR || opcode == FUSE_MKNOD || opcode == FUSE_SYMLINK ||
         opcode == FUSE_CREATE) &&
        size >= sizeof(fuse_entry_out)) {
        fuse_entry_out e;
        std::memcpy(&e, body, sizeof e);
        if (e.nodeid != 0 && g_nodes.size() < 64) {
            g_nodes.push_back(e.nodeid);
        }
        if (opcode == FUSE_CREATE && size >= sizeof e + sizeof(fuse_open_out) && g_handles.size() < 64) {
            fuse_open_out o;
            std::memcpy(&o, body + sizeof e, sizeof o);
            g_handles.push_back(o.fh);
        }
    }
    if ((opcode == FUSE_OPEN || opcode == FUSE_OPENDIR) && size >= sizeof(fuse_open_out) && g_handles.size() < 64) {
        fuse_open_out o;
        std::memcpy(&o, body, sizeof o);
        g_handles.push_back(o.fh);
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    std::string socket = zerohop::fuzz::StartDaemon("");
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
        abort();
    }
    // /dev/fuse takes answers of max_pages (256 pages); a socket takes a message no larger
    // than its send buffer, and an answer that does not fit is lost (EMSGSIZE), which looks
    // like a hang. Root may set buffers past net.core.wmem_max; anyone else gets requests
    // whose answers fit (g_max_answer).
    int big = 4 << 20;
    for (int fd : fds) {
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) != 0) {
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        }
    }
    int sndbuf = 0;
    socklen_t len = sizeof sndbuf;
    getsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, &len);
    g_max_answer = static_cast<uint32_t>(sndbuf / 2) - 4096;
    g_kernel = fds[0];
    zerohop::fuse::FuseOptions o;
    o.root = "/c";
    o.client.socket_path = socket;
    o.client.access_key = "fuzz";
    o.device_fd = fds[1];
    o.passthrough = false;
    o.max_threads = 2;
    auto fs = zerohop::fuse::FuseFs::Mount(o);
    if (!fs.ok()) {
        fprintf(stderr, "fuse_request_fuzzer: %s\n", std::string(fs.status().message()).c_str());
        abort();
    }
    g_fs = fs->release();
    std::thread([] { (void)g_fs->Run(); }).detach();
    fuse_init_in init = {};
    init.major = FUSE_KERNEL_VERSION;
    init.minor = FUSE_KERNEL_MINOR_VERSION;
    init.max_readahead = 1 << 20;
    init.flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_ATOMIC_O_TRUNC |
                 FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES;
    auto answer = Send(FUSE_INIT, 0, std::string(reinterpret_cast<const char*>(&init), sizeof init), true);
    fuse_out_header out;
    std::memcpy(&out, answer->data(), sizeof out);
    if (out.error != 0) {
        fprintf(stderr, "fuse_request_fuzzer: INIT failed with %d\n", out.error);
        abort();
    }
    RecordLifelongFds();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    zerohop::ByteReader in(std::string_view(reinterpret_cast<const char*>(data), size));
    uint8_t op = 0, node = 0, handle = 0;
    in.GetU8(&op);
    in.GetU8(&node);
    in.GetU8(&handle);
    uint32_t opcode = kOps[op % std::size(kOps)];
    if (op >= 250) {  // now and then any number the kernel might send one day
        opcode = 100 + op;
    }
    uint64_t nodeid = node < 200 ? g_nodes[node % g_nodes.size()] : 1000000u + node;
    std::string body(in.rest());
    // The kernel always sends an opcode's whole fixed part; libfuse reads it without looking
    // at the length, so a shorter body would have fields made of an earlier request's bytes.
    // Zeros after the input (and after its name's NUL, below) change nothing else.
    body.resize(std::max<size_t>(body.size(), kFixedPart), '\0');
    // Requests that name a file handle get one the file system gave (or a made-up one).
    if ((opcode == FUSE_READ || opcode == FUSE_WRITE || opcode == FUSE_RELEASE || opcode == FUSE_FLUSH ||
         opcode == FUSE_FSYNC || opcode == FUSE_READDIR || opcode == FUSE_READDIRPLUS ||
         opcode == FUSE_RELEASEDIR || opcode == FUSE_LSEEK || opcode == FUSE_FALLOCATE) &&
        body.size() >= sizeof(uint64_t) && handle < 200) {
        uint64_t fh = g_handles[handle % g_handles.size()];
        std::memcpy(body.data(), &fh, sizeof fh);  // fh is the first field of each of these
    }
    // fuse_read_in (READ, READDIR, READDIRPLUS): the size asked for at offset 16.
    if ((opcode == FUSE_READ || opcode == FUSE_READDIR || opcode == FUSE_READDIRPLUS) &&
        body.size() >= 16 + sizeof(uint32_t)) {
        uint32_t asked;
        std::memcpy(&asked, body.data() + 16, sizeof asked);
        asked = std::min(asked, g_max_answer);
        std::memcpy(body.data() + 16, &asked, sizeof asked);
    }
    body.push_back('\0');  // the kernel NUL-terminates the names it sends
    auto answer = Send(opcode, nodeid, body, Answered(opcode));
    if (answer) {
        Learn(opcode, *answer);
    }
    CheckLifelongFds();
    return 0;
}
