// What a CSI volume is to zerohop: handles, contexts (untrusted for inline volumes), what to
// publish. Every bad input is INVALID_ARGUMENT with a message naming it.

#include <gtest/gtest.h>

#include "volume.h"

namespace zerohop::csi {
namespace {

TEST(CsiVolume, AHandleIsAContainerAndAnOptionalSubPath) {
    auto whole = ParseVolumeHandle("demo");
    ASSERT_TRUE(whole.ok());
    EXPECT_EQ(whole->container, "demo");
    EXPECT_EQ(whole->sub_path, "");
    EXPECT_EQ(whole->Root().str(), "/demo");
    auto sub = ParseVolumeHandle("demo/pvs/pvc-1");
    ASSERT_TRUE(sub.ok());
    EXPECT_EQ(sub->sub_path, "pvs/pvc-1");
    EXPECT_EQ(sub->Root().str(), "/demo/pvs/pvc-1");
    EXPECT_EQ(VolumeHandle(*sub), "demo/pvs/pvc-1");
    EXPECT_TRUE(sub->fuse) << "the FUSE view unless the volume says otherwise";
    EXPECT_FALSE(sub->socket);
    for (const char* bad : {"", "/demo", "demo/", "demo//x", "demo/../x", "demo/./x", "../demo"}) {
        auto r = ParseVolumeHandle(bad);
        EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << "\"" << bad << "\"";
    }
}

TEST(CsiVolume, PublishSaysFuseSocketOrBoth) {
    VolumeSpec spec;
    ASSERT_TRUE(ParsePublish("socket", &spec).ok());
    EXPECT_TRUE(spec.socket && !spec.fuse);
    ASSERT_TRUE(ParsePublish("socket,fuse", &spec).ok());
    EXPECT_TRUE(spec.socket && spec.fuse);
    EXPECT_EQ(spec.PublishText(), "fuse,socket");
    for (const char* bad : {"", "nfs", "fuse,", "fuse,fuse", "FUSE", "fuse socket"}) {
        EXPECT_EQ(ParsePublish(bad, &spec).code(), absl::StatusCode::kInvalidArgument) << "\"" << bad << "\"";
    }
}

TEST(CsiVolume, APersistentVolumeTakesItsRootFromTheHandleAndOnlyOptionsFromTheContext) {
    auto v = VolumeFromRequest(
        "demo/a", {{"publish", "socket"}, {"createSubPath", "true"}, {"csi.storage.k8s.io/pod.name", "fn"}});
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->Root().str(), "/demo/a");
    EXPECT_TRUE(v->socket);
    EXPECT_TRUE(v->create_sub_path);
    EXPECT_FALSE(v->ephemeral);
    EXPECT_EQ(VolumeFromRequest("demo/a", {{"container", "other"}}).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(VolumeFromRequest("demo/a", {{"subPath", "x"}}).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(VolumeFromRequest("demo/a", {{"pubish", "fuse"}}).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(VolumeFromRequest("demo/a", {{"createSubPath", "1"}}).status().code(),
              absl::StatusCode::kInvalidArgument);
}

TEST(CsiVolume, AnInlineVolumeIsWhollyDescribedByItsUntrustedContext) {
    Context base = {{"csi.storage.k8s.io/ephemeral", "true"}, {"container", "demo"}, {"subPath", "scratch/x"}};
    auto v = VolumeFromRequest("csi-abc", base);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_TRUE(v->ephemeral);
    EXPECT_EQ(v->Root().str(), "/demo/scratch/x");
    auto with = [&](const char* key, std::string value) {
        Context c = base;
        c[key] = std::move(value);
        return VolumeFromRequest("csi-abc", c).status();
    };
    for (const std::string& sub : std::vector<std::string>{"../x", "/x", "x/", "x//y", "x/./y", std::string(5000, 'a'),
                                                           std::string("a\0b", 3)}) {
        EXPECT_EQ(with("subPath", sub).code(), absl::StatusCode::kInvalidArgument) << sub.substr(0, 20);
    }
    for (const std::string& c : std::vector<std::string>{"", "a/b", "..", std::string(300, 'c')}) {
        EXPECT_EQ(with("container", c).code(), absl::StatusCode::kInvalidArgument) << c.substr(0, 20);
    }
    EXPECT_EQ(with("csi.storage.k8s.io/ephemeral", "yes").code(), absl::StatusCode::kInvalidArgument);
    Context no_container = base;
    no_container.erase("container");
    EXPECT_EQ(VolumeFromRequest("csi-abc", no_container).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CsiVolume, PodInfoComesFromKubeletsKeys) {
    PodInfo pod = PodFromContext({{"csi.storage.k8s.io/pod.name", "fn-1"},
                                  {"csi.storage.k8s.io/pod.namespace", "team"},
                                  {"csi.storage.k8s.io/pod.uid", "u-1"},
                                  {"csi.storage.k8s.io/serviceAccount.name", "runner"}});
    EXPECT_EQ(pod, (PodInfo{"team", "fn-1", "u-1", "runner"}));
    EXPECT_EQ(PodFromContext({}), PodInfo{});
}

}  // namespace
}  // namespace zerohop::csi
