// zh-bench reads fio's results as JSON: real fio output, compact or pretty, and output that
// is not fio's JSON is an error rather than zeros.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "fio_json.h"

namespace zerohop {
namespace {

std::string RunFio(const std::string& args) {
    char tmpl[] = "/tmp/zh-fio-XXXXXX";
    int fd = mkstemp(tmpl);
    close(fd);
    std::string cmd = "fio --name=t --filename=" + std::string(tmpl) + " --size=1m --bs=4k --ioengine=psync " + args +
                      " --output-format=json 2>&1";
    FILE* f = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while (f != nullptr && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        out.append(buf, n);
    }
    if (f != nullptr) {
        pclose(f);
    }
    unlink(tmpl);
    return out;
}

TEST(FioJson, ARealFioRunGivesItsIopsAndLatencies) {
    std::string out = RunFio("--rw=randread --number_ios=2000");
    auto r = FioJobResult("t", out, "read", 4096);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_GT(r->ops_per_s, 0) << out;
    EXPECT_GT(r->p50_us, 0) << out;
    EXPECT_GE(r->p99_us, r->p50_us) << out;
    EXPECT_GE(r->p999_us, r->p99_us) << out;
    EXPECT_EQ(r->bytes_per_op, 4096);
    // The job did no writes: asking for them is an error, not zeros.
    EXPECT_FALSE(FioJobResult("t", out, "write", 4096).ok());
}

TEST(FioJson, LayoutDoesNotMatterOnlyTheJson) {
    // Compact, keys in another order, the read side after the write side.
    std::string compact =
        R"({"fio version":"fio-3.33","jobs":[{"jobname":"t","write":{"total_ios":0,"iops":0},)"
        R"("read":{"clat_ns":{"percentile":{"99.900000":900000,"50.000000":50000,"99.000000":99000}},)"
        R"("iops":1234.5,"total_ios":10}}]})";
    auto r = FioJobResult("t", compact, "read", 1);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->ops_per_s, 1234.5);
    EXPECT_EQ(r->p50_us, 50);
    EXPECT_EQ(r->p99_us, 99);
    EXPECT_EQ(r->p999_us, 900);
}

TEST(FioJson, OutputThatIsNotFiosJsonIsAnError) {
    for (std::string bad : {std::string(""), std::string("fio: pid=1, err=2/file:filesetup.c: No such file"),
                            std::string("{\"jobs\": []}"), std::string("{\"jobs\": [{\"read\": 5}]}")}) {
        EXPECT_FALSE(FioJobResult("t", bad, "read", 1).ok()) << bad;
    }
}

}  // namespace
}  // namespace zerohop
