// zerohop-csi: the CSI plugin (Identity, Node, Controller) for zerohop volumes.
//
//   zerohop-csi [--endpoint unix:///csi/csi.sock] [--mode node|controller|all] [--node-id NAME]
//               [--zerohop-socket PATH] [--admin-key-file PATH] [--state-dir DIR] [--kubelet-dir DIR]
//               [--zerohop-fuse PATH] [--log-level info]
//
// Serves until SIGTERM or SIGINT. See docs/CSI.md.

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "services.h"

namespace {

int Usage(int code) {
    (code == 0 ? std::cout : std::cerr)
        << "usage: zerohop-csi [--endpoint unix:///csi/csi.sock] [--mode node|controller|all] [--node-id NAME]\n"
           "                   [--zerohop-socket PATH] [--admin-key-file PATH] [--state-dir DIR]\n"
           "                   [--zerohop-fuse PATH] [--takeover-timeout S] [--kubelet-dir DIR]\n"
           "                   [--log-level LEVEL]\n"
           "  --endpoint: where to serve CSI (default $CSI_ENDPOINT, else unix:///csi/csi.sock)\n"
           "  --mode: node (Identity + Node, one per node), controller (Identity + Controller), all\n"
           "          (default node)\n"
           "  --node-id: this node's name (default $KUBE_NODE_NAME, else the host name)\n"
           "  --zerohop-socket: zerohopd (default $ZEROHOP_SOCKET, else /run/zerohop/zerohop.sock)\n"
           "  --admin-key-file: the node plugin's zerohopd key, marked admin in zerohopd's configuration\n"
           "                    (default $ZEROHOP_ADMIN_KEY_FILE; the node mode needs one)\n"
           "  --state-dir: the node plugin's state and FUSE mount points (default /var/lib/zerohop-csi)\n"
           "  --zerohop-fuse: the zerohop-fuse binary (default: beside this one)\n"
           "  --takeover-timeout: seconds a FUSE view's callers wait for a restarted zerohop-fuse (60)\n"
           "  --kubelet-dir: kubelet's root directory; targets outside it are refused (/var/lib/kubelet)\n";
    return code;
}

std::string Env(const char* name, std::string otherwise) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::string(v) : otherwise;
}

int g_stop_pipe[2] = {-1, -1};

void OnSignal(int) {
    char c = 's';
    (void)!write(g_stop_pipe[1], &c, 1);
}

}  // namespace

int main(int argc, char** argv) {
    namespace csi = zerohop::csi;
    using zerohop::Log;
    using zerohop::LogLevel;
    using zerohop::SetLogLevel;
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    std::string endpoint = Env("CSI_ENDPOINT", "unix:///csi/csi.sock");
    std::string mode = "node";
    std::string node_id = Env("KUBE_NODE_NAME", host);
    std::string socket = Env("ZEROHOP_SOCKET", "/run/zerohop/zerohop.sock");
    std::string key_file = Env("ZEROHOP_ADMIN_KEY_FILE", "");
    csi::NodeOptions node;
    node.state_dir = "/var/lib/zerohop-csi";
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    std::string dir = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string(argv[0]);
    dir = dir.substr(0, dir.rfind('/') + 1);
    node.zerohop_fuse = dir + "zerohop-fuse";
    if (access(node.zerohop_fuse.c_str(), X_OK) != 0) {
        node.zerohop_fuse = dir + "../fuse/zerohop-fuse";  // in a build tree
    }
    for (int i = 1; i < argc; ++i) {
        // --flag value, or --flag=value (as Kubernetes manifests usually write them).
        std::string a = argv[i];
        std::optional<std::string> inline_value;
        if (size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
            inline_value = a.substr(eq + 1);
            a = a.substr(0, eq);
        }
        auto value = [&]() -> std::string {
            if (inline_value) {
                return *inline_value;
            }
            if (i + 1 >= argc) {
                std::cerr << "zerohop-csi: " << a << " needs a value\n";
                std::exit(Usage(2));
            }
            return argv[++i];
        };
        if (a == "--endpoint") {
            endpoint = value();
        } else if (a == "--mode") {
            mode = value();
        } else if (a == "--node-id") {
            node_id = value();
        } else if (a == "--zerohop-socket") {
            socket = value();
        } else if (a == "--admin-key-file") {
            key_file = value();
        } else if (a == "--state-dir") {
            node.state_dir = value();
        } else if (a == "--zerohop-fuse") {
            node.zerohop_fuse = value();
        } else if (a == "--takeover-timeout") {
            node.takeover_secs = std::atoi(value().c_str());
        } else if (a == "--kubelet-dir") {
            node.kubelet_dir = value();
        } else if (a == "--log-level") {
            SetLogLevel(value());
        } else if (a == "--help" || a == "-h") {
            return Usage(0);
        } else {
            std::cerr << "zerohop-csi: unknown argument " << a << "\n";
            return Usage(2);
        }
    }
    bool serve_node = mode == "node" || mode == "all";
    bool serve_controller = mode == "controller" || mode == "all";
    if (!serve_node && !serve_controller) {
        std::cerr << "zerohop-csi: --mode " << mode << ": expected node, controller or all\n";
        return 2;
    }
    if (endpoint.rfind("unix://", 0) != 0) {
        std::cerr << "zerohop-csi: --endpoint " << endpoint << ": expected unix:///path\n";
        return 2;
    }
    if (node_id.empty()) {
        std::cerr << "zerohop-csi: --node-id is empty\n";
        return 2;
    }
    std::string admin_key;
    if (!key_file.empty()) {
        std::ifstream in(key_file);
        if (!in || !std::getline(in, admin_key) || admin_key.empty()) {
            std::cerr << "zerohop-csi: --admin-key-file " << key_file << ": cannot read a key from it\n";
            return 2;
        }
    } else if (serve_node) {
        std::cerr << "zerohop-csi: the node mode needs --admin-key-file (a key marked admin in zerohopd's "
                     "configuration)\n";
        return 2;
    }
    if (serve_node && access(node.zerohop_fuse.c_str(), X_OK) != 0) {
        std::cerr << "zerohop-csi: --zerohop-fuse " << node.zerohop_fuse << " is not an executable\n";
        return 2;
    }
    node.node_id = node_id;

    csi::DaemonLink daemon(socket, admin_key);
    csi::IdentityService identity(&daemon, serve_controller);
    std::unique_ptr<csi::NodeService> node_service;
    std::unique_ptr<csi::ControllerService> controller;
    if (serve_node) {
        node_service = std::make_unique<csi::NodeService>(node, &daemon);
        if (absl::Status s = node_service->Recover(); !s.ok()) {
            std::cerr << "zerohop-csi: " << s.message() << "\n";
            return 1;
        }
    }
    if (serve_controller) {
        controller = std::make_unique<csi::ControllerService>(&daemon);
    }
    std::string path = endpoint.substr(7);
    unlink(path.c_str());  // a socket an earlier plugin left
    grpc::ServerBuilder builder;
    builder.AddListeningPort(endpoint, grpc::InsecureServerCredentials());
    builder.RegisterService(&identity);
    if (node_service) {
        builder.RegisterService(node_service.get());
    }
    if (controller) {
        builder.RegisterService(controller.get());
    }
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (server == nullptr) {
        std::cerr << "zerohop-csi: cannot serve " << endpoint << " (does its directory exist?)\n";
        return 1;
    }
    chmod(path.c_str(), 0600);  // kubelet and the sidecars run as root
    Log(LogLevel::kInfo, "zerohop-csi serving", "endpoint", endpoint, "mode", mode, "node", node_id, "zerohopd", socket,
        "version", ZEROHOP_VERSION);

    if (pipe(g_stop_pipe) != 0) {
        return 1;
    }
    struct sigaction sa = {};
    sa.sa_handler = OnSignal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    char c;
    while (read(g_stop_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    Log(LogLevel::kInfo, "zerohop-csi stopping (mounts and sockets stay for the next one)");
    // Calls still running get 2 s; a cancelled one still ends its work (under the node's lock)
    // before the server, and then the services, go.
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server.reset();
    node_service.reset();
    unlink(path.c_str());
    return 0;
}
