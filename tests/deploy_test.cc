// deploy/: every manifest parses, and what zerohopd and zerohop-csi rely on holds across
// them: the driver's name, the sockets and where each container finds them, the keys, the
// image, the mount propagation, which pod alone is privileged, and that the example
// volumes are ones the plugin accepts. zerohopd's ConfigMap is parsed by zerohopd's own
// parser; the examples' volume attributes by the plugin's own.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "config/config.h"
#include "services.h"
#include "volume.h"

namespace zerohop {
namespace {

std::string Root() { return getenv("ZH_SOURCE_ROOT"); }

struct Doc {
    std::string file;
    YAML::Node node;
    std::string kind() const { return node["kind"] ? node["kind"].as<std::string>() : ""; }
    std::string name() const { return node["metadata"]["name"].as<std::string>(); }
    std::string ns() const { return node["metadata"]["namespace"] ? node["metadata"]["namespace"].as<std::string>() : ""; }
};

class DeployTest : public ::testing::Test {
protected:
    void SetUp() override {
        for (const auto& e : std::filesystem::recursive_directory_iterator(Root() + "/deploy")) {
            if (e.path().extension() != ".yaml") {
                continue;
            }
            std::string rel = e.path().string().substr(Root().size() + 1);
            std::vector<YAML::Node> nodes;
            ASSERT_NO_THROW(nodes = YAML::LoadAllFromFile(e.path().string())) << rel;
            for (const YAML::Node& n : nodes) {
                if (n.IsNull()) {
                    continue;
                }
                docs_.push_back({rel, n});
            }
        }
        ASSERT_GT(docs_.size(), 15u);
    }

    const Doc& One(const std::string& kind, const std::string& name) const {
        const Doc* found = nullptr;
        for (const Doc& d : docs_) {
            if (d.kind() == kind && d.node["metadata"] && d.name() == name) {
                EXPECT_EQ(found, nullptr) << kind << " " << name << " is defined twice";
                found = &d;
            }
        }
        if (found == nullptr) {
            ADD_FAILURE() << "no " << kind << " " << name << " in deploy/";
            static Doc none;
            return none;
        }
        return *found;
    }

    static YAML::Node Container(const YAML::Node& pod_spec, const std::string& name) {
        for (const YAML::Node& c : pod_spec["containers"]) {
            if (c["name"].as<std::string>() == name) {
                return c;
            }
        }
        ADD_FAILURE() << "no container " << name;
        return YAML::Node();
    }

    // "--flag=value" or "--flag value" among a container's command and args.
    static std::string Flag(const YAML::Node& c, const std::string& flag) {
        std::vector<std::string> argv;
        for (const char* k : {"command", "args"}) {
            for (const YAML::Node& a : c[k]) {
                argv.push_back(a.as<std::string>());
            }
        }
        for (size_t i = 0; i < argv.size(); ++i) {
            if (argv[i].rfind(flag + "=", 0) == 0) {
                return argv[i].substr(flag.size() + 1);
            }
            if (argv[i] == flag && i + 1 < argv.size()) {
                return argv[i + 1];
            }
        }
        return "";
    }

    // The pod volume a container mounts at `path`, and the mount.
    static std::pair<YAML::Node, YAML::Node> VolumeAt(const YAML::Node& spec, const YAML::Node& c, const std::string& path) {
        for (const YAML::Node& m : c["volumeMounts"]) {
            if (m["mountPath"].as<std::string>() == path) {
                for (const YAML::Node& v : spec["volumes"]) {
                    if (v["name"].as<std::string>() == m["name"].as<std::string>()) {
                        return {v, m};
                    }
                }
            }
        }
        ADD_FAILURE() << c["name"].as<std::string>() << " mounts nothing at " << path;
        return {YAML::Node(), YAML::Node()};
    }

    // zerohopd's configuration from its ConfigMap, parsed by zerohopd, with the key files of
    // its Secret in place (at a temporary directory standing for /etc/zerohop/keys).
    absl::StatusOr<DaemonConfig> DaemonConfiguration(std::string* keys_dir) {
        std::string yaml = One("ConfigMap", "zerohopd-config").node["data"]["zerohopd.yaml"].as<std::string>();
        char tmpl[] = "/tmp/zh-deploy-XXXXXX";
        std::string dir = mkdtemp(tmpl);
        for (const auto& kv : One("Secret", "zerohop-keys").node["stringData"]) {
            std::ofstream(dir + "/" + kv.first.as<std::string>()) << kv.second.as<std::string>() << "\n";
        }
        *keys_dir = "/etc/zerohop/keys";
        size_t at;
        while ((at = yaml.find(*keys_dir + "/")) != std::string::npos) {
            yaml.replace(at, keys_dir->size(), dir);
        }
        auto config = ParseConfig(yaml, "deploy/zerohopd-config.yaml");
        std::filesystem::remove_all(dir);
        return config;
    }

    std::vector<Doc> docs_;
};

TEST_F(DeployTest, EveryManifestIsAKubernetesObjectOrAPatchOfOne) {
    for (const Doc& d : docs_) {
        if (absl::StrContains(d.file, "-patch.yaml")) {
            EXPECT_TRUE(d.node["spec"]) << d.file;
            continue;
        }
        EXPECT_TRUE(d.node["apiVersion"] && d.node["kind"] && d.node["metadata"]["name"]) << d.file;
    }
}

TEST_F(DeployTest, TheDriverIsTheOnePluginAndKubeletAgreeOn) {
    const Doc& driver = One("CSIDriver", csi::kPluginName);
    EXPECT_FALSE(driver.node["spec"]["attachRequired"].as<bool>());
    EXPECT_TRUE(driver.node["spec"]["podInfoOnMount"].as<bool>()) << "the plugin names pods in metrics and logs";
    std::set<std::string> modes;
    for (const YAML::Node& m : driver.node["spec"]["volumeLifecycleModes"]) {
        modes.insert(m.as<std::string>());
    }
    EXPECT_EQ(modes, (std::set<std::string>{"Persistent", "Ephemeral"}));
    const Doc& sc = One("StorageClass", "zerohop-demo");
    EXPECT_EQ(sc.node["provisioner"].as<std::string>(), csi::kPluginName);
}

TEST_F(DeployTest, TheNodePodWiresSocketsKeysAndMountsAsTheBinariesExpect) {
    std::string keys;
    auto config = DaemonConfiguration(&keys);
    ASSERT_TRUE(config.ok()) << config.status();
    const YAML::Node spec = One("DaemonSet", "zerohop-node").node["spec"]["template"]["spec"];
    YAML::Node daemon = Container(spec, "zerohopd"), plugin = Container(spec, "zerohop-csi"),
               registrar = Container(spec, "node-driver-registrar"), probe = Container(spec, "liveness-probe");
    std::string image = absl::StrCat("zerohop/zerohop:", ZEROHOP_VERSION);
    EXPECT_EQ(daemon["image"].as<std::string>(), image);
    EXPECT_EQ(plugin["image"].as<std::string>(), image);
    // zerohopd reads the ConfigMap where its command says.
    EXPECT_EQ(Flag(daemon, "--config"), "/etc/zerohop/zerohopd.yaml");
    EXPECT_EQ(VolumeAt(spec, daemon, "/etc/zerohop/zerohopd.yaml").first["configMap"]["name"].as<std::string>(),
              "zerohopd-config");
    // The plugin dials zerohopd's socket, and both see the volume sockets at the same path:
    // what zerohopd answers a publish with is a path the plugin binds.
    EXPECT_EQ(Flag(plugin, "--zerohop-socket"), config->listen);
    std::string run = config->runtime_dir;
    auto [run_d, m1] = VolumeAt(spec, daemon, run);
    auto [run_p, m2] = VolumeAt(spec, plugin, run);
    EXPECT_EQ(run_d["name"].as<std::string>(), run_p["name"].as<std::string>());
    EXPECT_EQ(run_d["hostPath"]["path"].as<std::string>(), run);
    EXPECT_EQ(config->listen.rfind(run + "/", 0), 0u);
    EXPECT_LE(run.size() + std::string("/volumes/").size() + 64 + std::string("/zerohop.sock").size(), 107u)
        << "a volume socket's path fits sun_path";
    // The admin key: a file of the Secret, marked admin in the configuration.
    std::string admin_file = Flag(plugin, "--admin-key-file");
    ASSERT_EQ(admin_file.rfind(keys + "/", 0), 0u);
    std::string admin_name = admin_file.substr(keys.size() + 1);
    EXPECT_TRUE(One("Secret", "zerohop-keys").node["stringData"][admin_name]) << admin_name;
    EXPECT_EQ(VolumeAt(spec, plugin, keys).first["secret"]["secretName"].as<std::string>(), "zerohop-keys");
    EXPECT_EQ(VolumeAt(spec, daemon, keys).first["secret"]["secretName"].as<std::string>(), "zerohop-keys");
    bool admin = false;
    for (const CredentialConfig& c : config->credentials) {
        admin |= c.admin && c.containers.empty();
    }
    EXPECT_TRUE(admin) << "an admin key with no containers of its own";
    // The CSI socket: where the plugin serves, the sidecars dial, kubelet is told.
    std::string endpoint = Flag(plugin, "--endpoint");
    ASSERT_EQ(endpoint.rfind("unix://", 0), 0u);
    std::string socket = endpoint.substr(7);
    EXPECT_EQ(Flag(registrar, "--csi-address"), socket);
    EXPECT_EQ(Flag(probe, "--csi-address"), socket);
    std::string dir = socket.substr(0, socket.rfind('/'));
    std::string host_dir = std::string("/var/lib/kubelet/plugins/") + csi::kPluginName;
    EXPECT_EQ(VolumeAt(spec, plugin, dir).first["hostPath"]["path"].as<std::string>(), host_dir);
    EXPECT_EQ(Flag(registrar, "--kubelet-registration-path"), host_dir + socket.substr(dir.size()));
    EXPECT_EQ(VolumeAt(spec, registrar, "/registration").first["hostPath"]["path"].as<std::string>(),
              "/var/lib/kubelet/plugins_registry");
    // Pods' volumes: the plugin's mounts must reach kubelet.
    auto [pods, pods_mount] = VolumeAt(spec, plugin, "/var/lib/kubelet/pods");
    EXPECT_EQ(pods["hostPath"]["path"].as<std::string>(), "/var/lib/kubelet/pods");
    EXPECT_EQ(pods_mount["mountPropagation"].as<std::string>(), "Bidirectional");
    EXPECT_TRUE(plugin["securityContext"]["privileged"].as<bool>());
    EXPECT_EQ(VolumeAt(spec, plugin, Flag(plugin, "--state-dir")).first["hostPath"]["path"].as<std::string>(),
              "/var/lib/zerohop-csi");
    EXPECT_EQ(Flag(plugin, "--mode"), "node");
    EXPECT_EQ(plugin["env"][0]["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>(), "spec.nodeName");
    EXPECT_EQ(Flag(probe, "--health-port"), "9808");
    EXPECT_EQ(plugin["livenessProbe"]["httpGet"]["port"].as<std::string>(), "healthz");
    // The store lives on the host.
    EXPECT_EQ(VolumeAt(spec, daemon, "/var/lib/zerohop").first["hostPath"]["path"].as<std::string>(),
              "/var/lib/zerohop");
    EXPECT_EQ(One("ServiceAccount", spec["serviceAccountName"].as<std::string>()).ns(), "zerohop-system");
}

TEST_F(DeployTest, TheControllerProvisionsThroughANodesDaemonWithTheStorageClassKey) {
    const YAML::Node spec = One("Deployment", "zerohop-controller").node["spec"]["template"]["spec"];
    YAML::Node plugin = Container(spec, "zerohop-csi"), provisioner = Container(spec, "csi-provisioner");
    EXPECT_EQ(Flag(plugin, "--mode"), "controller");
    EXPECT_EQ("unix://" + Flag(provisioner, "--csi-address"), Flag(plugin, "--endpoint"));
    std::string socket = Flag(plugin, "--zerohop-socket");
    EXPECT_EQ(VolumeAt(spec, plugin, socket.substr(0, socket.rfind('/'))).first["hostPath"]["path"].as<std::string>(),
              "/run/zerohop");
    const std::string sa = spec["serviceAccountName"].as<std::string>();
    bool bound = false;
    for (const Doc& d : docs_) {
        if (d.kind() == "ClusterRoleBinding") {
            bound |= d.node["subjects"][0]["name"].as<std::string>() == sa &&
                     One("ClusterRole", d.node["roleRef"]["name"].as<std::string>()).kind() == "ClusterRole";
        }
    }
    EXPECT_TRUE(bound) << "the provisioner's account has its rights";
    // The StorageClass: parameters CreateVolume knows, a container zerohopd has, secrets that exist.
    std::string keys;
    auto config = DaemonConfiguration(&keys);
    ASSERT_TRUE(config.ok()) << config.status();
    const YAML::Node params = One("StorageClass", "zerohop-demo").node["parameters"];
    for (const auto& kv : params) {
        std::string k = kv.first.as<std::string>();
        EXPECT_TRUE(k == "container" || k == "parentPath" || k == "publish" || k.rfind("csi.storage.k8s.io/", 0) == 0)
            << k;
    }
    bool mounted = false;
    for (const MountConfig& m : config->mounts) {
        mounted |= m.container == params["container"].as<std::string>();
    }
    EXPECT_TRUE(mounted);
    csi::VolumeSpec spec_publish;
    EXPECT_TRUE(csi::ParsePublish(params["publish"].as<std::string>(), &spec_publish).ok());
    const Doc& secret = One("Secret", params["csi.storage.k8s.io/provisioner-secret-name"].as<std::string>());
    EXPECT_EQ(secret.ns(), params["csi.storage.k8s.io/provisioner-secret-namespace"].as<std::string>());
    EXPECT_TRUE(secret.node["stringData"][csi::kAccessKeySecret]);
}

TEST_F(DeployTest, OnlyTheNodePluginIsPrivilegedAndWorkloadsUseVolumesAlone) {
    for (const Doc& d : docs_) {
        if (d.kind() != "Pod" && d.kind() != "DaemonSet" && d.kind() != "Deployment") {
            continue;
        }
        YAML::Node spec = d.kind() == "Pod" ? d.node["spec"] : d.node["spec"]["template"]["spec"];
        bool system = d.ns() == "zerohop-system";
        for (const YAML::Node& c : spec["containers"]) {
            const YAML::Node security = c["securityContext"];
            bool privileged = security && security["privileged"] && security["privileged"].as<bool>();
            EXPECT_EQ(privileged, d.name() == "zerohop-node" && c["name"].as<std::string>() == "zerohop-csi")
                << d.file << " " << c["name"];
        }
        if (system) {
            continue;
        }
        // A workload: no hostPath, no root, no shared /dev/shm, no key in its environment.
        for (const YAML::Node& v : spec["volumes"]) {
            EXPECT_FALSE(v["hostPath"]) << d.file;
        }
        EXPECT_TRUE(spec["securityContext"]["runAsNonRoot"].as<bool>()) << d.file;
        for (const YAML::Node& c : spec["containers"]) {
            for (const YAML::Node& e : c["env"]) {
                EXPECT_FALSE(absl::StrContains(e["name"].as<std::string>(), "KEY")) << d.file;
            }
        }
    }
}

TEST_F(DeployTest, TheExamplesVolumesAreOnesThePluginAccepts) {
    int inline_volumes = 0, socket_pods = 0;
    for (const Doc& d : docs_) {
        if (d.kind() != "Pod") {
            continue;
        }
        const YAML::Node spec = d.node["spec"];
        for (const YAML::Node& v : spec["volumes"]) {
            std::string name = v["name"].as<std::string>();
            bool socket = false;
            if (v["csi"]) {
                ++inline_volumes;
                EXPECT_EQ(v["csi"]["driver"].as<std::string>(), csi::kPluginName);
                csi::Context context = {{"csi.storage.k8s.io/ephemeral", "true"}};
                for (const auto& kv : v["csi"]["volumeAttributes"]) {
                    context[kv.first.as<std::string>()] = kv.second.as<std::string>();
                }
                auto volume = csi::VolumeFromRequest("csi-example", context);
                ASSERT_TRUE(volume.ok()) << d.file << ": " << volume.status();
                socket = volume->socket;
                const Doc& secret = One("Secret", v["csi"]["nodePublishSecretRef"]["name"].as<std::string>());
                EXPECT_EQ(secret.ns(), d.ns());
                EXPECT_TRUE(secret.node["stringData"][csi::kAccessKeySecret]);
            } else if (v["persistentVolumeClaim"]) {
                const Doc& pvc = One("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"].as<std::string>());
                const Doc& sc = One("StorageClass", pvc.node["spec"]["storageClassName"].as<std::string>());
                socket = absl::StrContains(sc.node["parameters"]["publish"].as<std::string>(), "socket");
                EXPECT_TRUE(One("Secret", sc.node["parameters"]["csi.storage.k8s.io/node-publish-secret-name"]
                                              .as<std::string>())
                                .node["stringData"][csi::kAccessKeySecret]);
            }
            // A pod that uses the socket mounts it where libzerohop looks by default.
            for (const YAML::Node& c : spec["containers"]) {
                for (const YAML::Node& m : c["volumeMounts"]) {
                    if (socket && m["name"].as<std::string>() == name) {
                        ++socket_pods;
                        EXPECT_EQ(m["mountPath"].as<std::string>(), "/run/zerohop") << d.file;
                    }
                }
            }
        }
    }
    EXPECT_GE(inline_volumes, 2);
    EXPECT_GE(socket_pods, 2);
}

}  // namespace
}  // namespace zerohop
