// zh-bench --suite csi: NodePublishVolume through a real zerohop-csi (gRPC on its unix
// socket, as kubelet calls it) and a real zerohopd, each publish undone (untimed) before the
// next:
//   publish socket            the pod's scoped socket, bound at its target
//   publish fuse, new view    the first pod of a volume: a zerohop-fuse is started
//   publish fuse, shared view another pod of a volume already viewed: a bind mount
// and the time from the publish call to the pod's first byte (a read of a 4 KiB file
// through the FUSE view; a libzerohop session on the socket and a get). The baseline of
// each is what csi-driver-host-path does to publish: a CSI call (here NodeGetCapabilities on
// the same channel: the gRPC round trip every plugin costs) and a bind mount of a
// directory (then a read of the file from it), in the same run.

#include "bench_csi.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "bench_procs.h"
#include "csi.grpc.pb.h"

namespace zerohop {

namespace {

namespace v1 = ::csi::v1;

std::string FindZerohopCsi() {
    std::string d = FindZerohopd();
    std::string candidate = d.substr(0, d.rfind('/')) + "/../csi/zerohop-csi";
    return access(candidate.c_str(), X_OK) == 0 ? candidate : "zerohop-csi";
}

std::string ReadFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY);
    std::string out(8192, '\0');
    ssize_t n = fd >= 0 ? ::read(fd, out.data(), out.size()) : -1;
    if (fd >= 0) {
        ::close(fd);
    }
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
}

double Micros(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); }

// Runs `cycle` (which returns the microseconds of its timed parts, publish and first byte)
// for about `d`, at least 20 times; two Results.
std::pair<Result, Result> Cycles(const std::string& name, std::chrono::milliseconds d,
                                 const std::function<std::pair<double, double>()>& cycle) {
    std::vector<double> publish, first;
    auto start = Clock::now();
    for (int i = 0; i < 3; ++i) {
        cycle();  // warm up
    }
    start = Clock::now();
    while (Clock::now() - start < d || publish.size() < 20) {
        auto [p, f] = cycle();
        publish.push_back(p);
        first.push_back(f);
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    return {Summarize("publish " + name, &publish, secs, 0), Summarize("publish+first byte " + name, &first, secs, 0)};
}

}  // namespace

std::vector<Comparison> CsiSuite(std::chrono::milliseconds d, const std::string& dir) {
    if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
        std::cerr << "zh-bench: the csi suite needs root and /dev/fuse: skipped\n";
        return {};
    }
    std::string root = dir + "/csi";
    std::filesystem::create_directories(root + "/pods");
    std::filesystem::create_directories(root + "/hostpath");
    std::ofstream(root + "/admin-key") << "bench-admin\n";
    BenchDaemon daemon = StartBenchDaemon(root, 2, "  - {key: bench-admin, admin: true}\n");
    auto client = ConnectWaiting(daemon.options);
    std::string data(4096, 'z');
    Check(client->Mkdir({.path = *Path::Parse("/bench/vol"), .mode = 0777}).status(), "mkdir");
    Check(client->PutObject({.path = *Path::Parse("/bench/vol/data")}, data).status(), "put");
    std::ofstream(root + "/hostpath/data") << data;
    Child plugin({FindZerohopCsi(), "--endpoint=unix://" + root + "/csi.sock", "--mode=node", "--node-id=bench",
                  "--zerohop-socket=" + daemon.options.socket_path, "--admin-key-file=" + root + "/admin-key",
                  "--state-dir=" + root + "/state"});
    auto channel = grpc::CreateChannel("unix://" + root + "/csi.sock", grpc::InsecureChannelCredentials());
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(20))) {
        Check(absl::UnavailableError("zerohop-csi did not start (is it built beside zerohopd?)"), "csi");
    }
    auto node = v1::Node::NewStub(channel);
    int n = 0;
    auto publish = [&](const std::string& target, const std::string& mode) {
        v1::NodePublishVolumeRequest req;
        req.set_volume_id("bench/vol");
        req.set_target_path(target);
        req.mutable_volume_capability()->mutable_mount();
        req.mutable_volume_capability()->mutable_access_mode()->set_mode(
            v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER);
        (*req.mutable_secrets())["accessKey"] = "bench";
        (*req.mutable_volume_context())["publish"] = mode;
        grpc::ClientContext ctx;
        v1::NodePublishVolumeResponse out;
        grpc::Status s = node->NodePublishVolume(&ctx, req, &out);
        Check(s.ok() ? absl::OkStatus() : absl::InternalError(s.error_message()), "NodePublishVolume");
    };
    auto unpublish = [&](const std::string& target) {
        v1::NodeUnpublishVolumeRequest req;
        req.set_volume_id("bench/vol");
        req.set_target_path(target);
        grpc::ClientContext ctx;
        v1::NodeUnpublishVolumeResponse out;
        grpc::Status s = node->NodeUnpublishVolume(&ctx, req, &out);
        Check(s.ok() ? absl::OkStatus() : absl::InternalError(s.error_message()), "NodeUnpublishVolume");
    };
    auto next_target = [&] {
        std::string parent = absl::StrCat(root, "/pods/pod-", ++n, "/volumes/kubernetes.io~csi/pvc");
        std::filesystem::create_directories(parent);
        return parent + "/mount";
    };
    auto check_read = [&](const std::string& got) {
        Check(got == data ? absl::OkStatus() : absl::DataLossError("the first read got other bytes"), "read");
    };
    // The baseline: a CSI call and a bind mount of a directory, as csi-driver-host-path publishes.
    auto [bind, bind_read] = Cycles("(bind mount)", d, [&] {
        std::string target = next_target();
        std::filesystem::create_directory(target);
        auto t0 = Clock::now();
        grpc::ClientContext ctx;
        v1::NodeGetCapabilitiesResponse caps;
        Check(node->NodeGetCapabilities(&ctx, {}, &caps).ok() ? absl::OkStatus() : absl::UnavailableError("csi"),
              "NodeGetCapabilities");
        if (::mount((root + "/hostpath").c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
            Check(absl::InternalError("bind mount failed"), "baseline");
        }
        auto t1 = Clock::now();
        check_read(ReadFile(target + "/data"));
        auto t2 = Clock::now();
        ::umount2(target.c_str(), MNT_DETACH);
        std::filesystem::remove(target);
        return std::pair{Micros(t0, t1), Micros(t0, t2)};
    });
    auto [socket, socket_read] = Cycles("socket", d, [&] {
        std::string target = next_target();
        auto t0 = Clock::now();
        publish(target, "socket");
        auto t1 = Clock::now();
        ClientOptions o;
        o.socket_path = target + "/zerohop.sock";
        o.access_key = "";
        o.client_bytes = 1 << 20;
        o.daemon_bytes = 1 << 20;
        auto pod = Client::Connect(o);
        Check(pod.status(), "connect through the volume's socket");
        auto got = (*pod)->GetObject({.path = *Path::Parse("/bench/data")});
        Check(got.status(), "get");
        check_read(*got);
        auto t2 = Clock::now();
        pod->reset();
        unpublish(target);
        return std::pair{Micros(t0, t1), Micros(t0, t2)};
    });
    // One cycle of a FUSE view: publish, first read, unpublish.
    auto fuse_cycle = [&] {
        std::string target = next_target();
        auto t0 = Clock::now();
        publish(target, "fuse");
        auto t1 = Clock::now();
        check_read(ReadFile(target + "/data"));
        auto t2 = Clock::now();
        unpublish(target);
        return std::pair{Micros(t0, t1), Micros(t0, t2)};
    };
    auto [fresh, fresh_read] = Cycles("fuse, new view", d, fuse_cycle);
    std::string holder = next_target();  // keeps the view up: the next publishes share it
    publish(holder, "fuse");
    auto [shared, shared_read] = Cycles("fuse, shared view", d, fuse_cycle);
    unpublish(holder);
    std::string base = "CSI call + bind mount (csi-driver-host-path)";
    std::string base_read = "CSI call + bind mount + first read";
    return {{socket, bind, base},       {socket_read, bind_read, base_read}, {fresh, bind, base},
            {fresh_read, bind_read, base_read}, {shared, bind, base},    {shared_read, bind_read, base_read}};
}

}  // namespace zerohop
