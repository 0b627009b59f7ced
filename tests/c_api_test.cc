// The C ABI (zerohop.h) against a real daemon: every function, its errors, and the two
// programs that use it from outside C++ (examples/c_api.c, examples/python/zerohop_ctypes.py).

#include "zerohop/zerohop.h"

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#include "daemon_fixture.h"

namespace zerohop {
namespace {

class CApiTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/zh-capi-XXXXXX";
        dir_ = mkdtemp(tmpl);
        daemon_ = std::make_unique<testing::Daemon>(dir_);
        daemon_->Start();
        zh_options o = {};
        o.socket_path = daemon_->socket().c_str();
        o.access_key = "rw-key";
        o.client_bytes = 2 << 20;
        o.daemon_bytes = 2 << 20;
        c_ = zh_connect(&o);
        ASSERT_NE(c_, nullptr) << zh_last_error();
    }
    void TearDown() override {
        zh_close(c_);
        daemon_.reset();
        std::filesystem::remove_all(dir_);
    }

    // Runs a program with the session's socket and key in its environment; its output.
    std::string Run(const std::string& command, int* exit_code) {
        return testing::RunShell(
            "ZEROHOP_SOCKET=" + daemon_->socket() + " ZEROHOP_ACCESS_KEY=rw-key " + command, exit_code);
    }

    std::string dir_;
    std::unique_ptr<testing::Daemon> daemon_;
    zh_client* c_ = nullptr;
};

#define ZH_ASSERT(call) ASSERT_EQ((call), ZH_OK) << #call << ": " << zh_last_error()

TEST_F(CApiTest, ConnectFailuresSayWhy) {
    zh_options o = {};
    o.socket_path = "/nonexistent/zh.sock";
    EXPECT_EQ(zh_connect(&o), nullptr);
    EXPECT_NE(std::string(zh_last_error()).find("cannot reach zerohopd"), std::string::npos) << zh_last_error();
    o.socket_path = daemon_->socket().c_str();
    o.access_key = "wrong";
    EXPECT_EQ(zh_connect(&o), nullptr);
    EXPECT_NE(std::string(zh_last_error()).find("unknown access key"), std::string::npos) << zh_last_error();
    EXPECT_NE(zh_session_id(c_), 0u);
}

TEST_F(CApiTest, NamespaceOperations) {
    ZH_ASSERT(zh_mkdir(c_, "/demo/d", 0750));
    zh_info info;
    ZH_ASSERT(zh_stat(c_, "/demo/d", &info));
    EXPECT_EQ(info.type, ZH_TYPE_DIRECTORY);
    EXPECT_EQ(info.mode, 0750u);
    EXPECT_EQ(zh_stat(c_, "/demo/none", &info), ZH_NOT_FOUND);
    EXPECT_NE(std::string(zh_last_error()).find("/demo/none"), std::string::npos);
    EXPECT_EQ(zh_stat(c_, "relative", &info), ZH_INVALID_ARGUMENT);
    EXPECT_EQ(zh_stat(nullptr, "/demo", &info), ZH_INVALID_ARGUMENT);

    for (const char* name : {"/demo/d/a", "/demo/d/b", "/demo/d/c"}) {
        ZH_ASSERT(zh_put(c_, name, "x", 1, nullptr, nullptr, nullptr));
    }
    zh_list* l = nullptr;
    ZH_ASSERT(zh_list_dir(c_, "/demo/d", nullptr, nullptr, 2, &l));
    ASSERT_EQ(zh_list_count(l), 2u);
    EXPECT_STREQ(zh_list_name(l, 0), "a");
    EXPECT_EQ(zh_list_info(l, 1)->size, 1u);
    EXPECT_EQ(zh_list_name(l, 2), nullptr);
    EXPECT_TRUE(zh_list_truncated(l));
    std::string marker = zh_list_next_marker(l);
    zh_list_free(l);
    ZH_ASSERT(zh_list_dir(c_, "/demo/d", nullptr, marker.c_str(), 0, &l));
    ASSERT_EQ(zh_list_count(l), 1u);
    EXPECT_STREQ(zh_list_name(l, 0), "c");
    zh_list_free(l);
    ZH_ASSERT(zh_list_dir(c_, "/", nullptr, nullptr, 0, &l));  // the key's containers
    ASSERT_EQ(zh_list_count(l), 1u);
    EXPECT_STREQ(zh_list_name(l, 0), "demo");
    zh_list_free(l);

    ZH_ASSERT(zh_rename(c_, "/demo/d/a", "/demo/d/z", 0));
    EXPECT_EQ(zh_rename(c_, "/demo/d/b", "/demo/d/z", 1), ZH_ALREADY_EXISTS);
    ZH_ASSERT(zh_symlink(c_, "/demo/d/link", "z"));
    char* target = nullptr;
    ZH_ASSERT(zh_readlink(c_, "/demo/d/link", &target));
    EXPECT_STREQ(target, "z");
    zh_free(target);
    ZH_ASSERT(zh_set_metadata(c_, "/demo/d/z", ZH_SET_MODE | ZH_SET_MTIME, 0600, 0, 0, 1234, 5, &info));
    EXPECT_EQ(info.mode, 0600u);
    EXPECT_EQ(info.mtime_secs, 1234);
    EXPECT_GT(info.atime_secs, 0) << "made now, its access time is its creation's";
    ZH_ASSERT(zh_stat(c_, "/demo/d", &info));
    EXPECT_EQ(info.subdirs, 0u);
    ZH_ASSERT(zh_stat(c_, "/demo", &info));
    EXPECT_GE(info.subdirs, 1u) << "/demo/d";
    EXPECT_EQ(zh_rmdir(c_, "/demo/d"), ZH_FAILED_PRECONDITION);
    for (const char* name : {"/demo/d/z", "/demo/d/b", "/demo/d/c", "/demo/d/link"}) {
        ZH_ASSERT(zh_delete(c_, name, nullptr));
    }
    ZH_ASSERT(zh_rmdir(c_, "/demo/d"));
}

TEST_F(CApiTest, ObjectsInPlaceCopiedAndBuffered) {
    zh_attrs* a = zh_attrs_new();
    ZH_ASSERT(zh_attrs_set_int64(a, "v", 1));
    zh_info info;
    ZH_ASSERT(zh_put(c_, "/demo/o", "hello world", 11, a, nullptr, &info));
    EXPECT_EQ(info.size, 11u);
    EXPECT_EQ(zh_put(c_, "/demo/o", "x", 1, nullptr, "v == 2", nullptr), ZH_FAILED_PRECONDITION);
    zh_attrs_free(a);

    zh_view* v = nullptr;
    ZH_ASSERT(zh_get(c_, "/demo/o", 6, ZH_TO_END, &v));
    EXPECT_EQ(std::string(static_cast<const char*>(zh_view_data(v)), zh_view_size(v)), "world");
    EXPECT_EQ(zh_view_info(v)->size, 11u);
    zh_view_release(v);

    ZH_ASSERT(zh_write(c_, "/demo/o", 0, "HELLO", 5, nullptr));
    ZH_ASSERT(zh_append(c_, "/demo/o", "!", 1, &info));
    EXPECT_EQ(info.size, 12u);
    ZH_ASSERT(zh_truncate(c_, "/demo/o", 5, nullptr));
    void* data = nullptr;
    size_t size = 0;
    ZH_ASSERT(zh_get_copy(c_, "/demo/o", 0, ZH_TO_END, &data, &size));
    EXPECT_EQ(std::string(static_cast<const char*>(data), size), "HELLO");
    zh_free(data);

    // A large object streams through the 2 MiB region both ways.
    std::string big(5 << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i) {
        big[i] = static_cast<char>(i * 31 >> 3);
    }
    ZH_ASSERT(zh_put(c_, "/demo/big", big.data(), big.size(), nullptr, nullptr, nullptr));
    ZH_ASSERT(zh_get_copy(c_, "/demo/big", 0, ZH_TO_END, &data, &size));
    EXPECT_TRUE(size == big.size() && std::memcmp(data, big.data(), size) == 0);
    zh_free(data);

    zh_buffer* b = nullptr;
    ZH_ASSERT(zh_buffer_alloc(c_, 4096, &b));
    ASSERT_GE(zh_buffer_capacity(b), 4096u);
    std::memcpy(zh_buffer_data(b), "in place", 8);
    ZH_ASSERT(zh_put_buffer(c_, "/demo/buffered", b, 8, nullptr, nullptr, &info));
    EXPECT_EQ(info.size, 8u);
    ZH_ASSERT(zh_buffer_alloc(c_, 16, &b));
    zh_buffer_free(b);
    EXPECT_EQ(zh_buffer_alloc(c_, 64 << 20, &b), ZH_INVALID_ARGUMENT);
}

TEST_F(CApiTest, ItemsWithEveryAttributeType) {
    zh_attrs* a = zh_attrs_new();
    const int64_t ints[] = {1, 2, 3};
    const double doubles[] = {0.5, 1.5};
    ZH_ASSERT(zh_attrs_set_bool(a, "b", 1));
    ZH_ASSERT(zh_attrs_set_int64(a, "i", -7));
    ZH_ASSERT(zh_attrs_set_double(a, "d", 2.5));
    ZH_ASSERT(zh_attrs_set_string(a, "s", "text", 4));
    ZH_ASSERT(zh_attrs_set_blob(a, "blob", "\0\1", 2));
    ZH_ASSERT(zh_attrs_set_timestamp(a, "t", 100, 5));
    ZH_ASSERT(zh_attrs_set_int64_array(a, "ia", ints, 3));
    ZH_ASSERT(zh_attrs_set_double_array(a, "da", doubles, 2));
    EXPECT_EQ(zh_attrs_set_int64(a, "__size", 1), ZH_INVALID_ARGUMENT);
    EXPECT_EQ(zh_attrs_set_timestamp(a, "t2", 1, -1), ZH_INVALID_ARGUMENT);
    ZH_ASSERT(zh_attrs_set_int64(a, "gone", 1));
    ZH_ASSERT(zh_attrs_remove(a, "gone"));
    EXPECT_EQ(zh_attrs_count(a), 8u);
    ZH_ASSERT(zh_put_item(c_, "/demo/it", a, nullptr, nullptr));
    zh_attrs_free(a);

    zh_attrs* got = nullptr;
    ZH_ASSERT(zh_get_item(c_, "/demo/it", nullptr, 0, &got));
    EXPECT_EQ(zh_attrs_count(got), 8u);
    EXPECT_STREQ(zh_attrs_name(got, 0), "b");  // name order
    int b = 0;
    int64_t i = 0;
    double d = 0;
    const char* s = nullptr;
    const void* blob = nullptr;
    size_t n = 0;
    int64_t secs = 0;
    int32_t nsecs = 0;
    const int64_t* ia = nullptr;
    const double* da = nullptr;
    ZH_ASSERT(zh_attrs_get_bool(got, "b", &b));
    ZH_ASSERT(zh_attrs_get_int64(got, "i", &i));
    ZH_ASSERT(zh_attrs_get_double(got, "d", &d));
    EXPECT_TRUE(b == 1 && i == -7 && d == 2.5);
    ZH_ASSERT(zh_attrs_get_string(got, "s", &s, &n));
    EXPECT_EQ(std::string(s, n), "text");
    ZH_ASSERT(zh_attrs_get_blob(got, "blob", &blob, &n));
    EXPECT_EQ(std::string(static_cast<const char*>(blob), n), std::string("\0\1", 2));
    ZH_ASSERT(zh_attrs_get_timestamp(got, "t", &secs, &nsecs));
    EXPECT_TRUE(secs == 100 && nsecs == 5);
    ZH_ASSERT(zh_attrs_get_int64_array(got, "ia", &ia, &n));
    EXPECT_TRUE(n == 3 && ia[2] == 3);
    ZH_ASSERT(zh_attrs_get_double_array(got, "da", &da, &n));
    EXPECT_TRUE(n == 2 && da[1] == 1.5);
    EXPECT_EQ(zh_attrs_get_int64(got, "s", &i), ZH_INVALID_ARGUMENT);
    EXPECT_NE(std::string(zh_last_error()).find("is a string"), std::string::npos) << zh_last_error();
    EXPECT_EQ(zh_attrs_get_int64(got, "none", &i), ZH_NOT_FOUND);
    EXPECT_EQ(zh_attrs_type(got, "da"), ZH_DOUBLE_ARRAY);
    EXPECT_EQ(zh_attrs_type(got, "none"), 0);
    zh_attrs_free(got);

    const char* only[] = {"i"};
    ZH_ASSERT(zh_get_item(c_, "/demo/it", only, 1, &got));
    EXPECT_EQ(zh_attrs_count(got), 1u);
    zh_attrs_free(got);

    ZH_ASSERT(zh_update_item(c_, "/demo/it", "i = i + 10", "i < 0", nullptr, nullptr));
    EXPECT_EQ(zh_update_item(c_, "/demo/it", "i = 0", "i < 0", nullptr, nullptr), ZH_FAILED_PRECONDITION);
    EXPECT_EQ(zh_update_item(c_, "/demo/it", "i = = 0", nullptr, nullptr, nullptr), ZH_INVALID_ARGUMENT);

    // A table of items, scanned with a filter in pages.
    ZH_ASSERT(zh_mkdir(c_, "/demo/t", 0755));
    std::vector<std::string> paths;
    std::vector<zh_attrs*> attrs;
    for (int k = 0; k < 10; ++k) {
        paths.push_back("/demo/t/k" + std::to_string(k));
        attrs.push_back(zh_attrs_new());
        zh_attrs_set_int64(attrs.back(), "k", k);
    }
    paths.push_back("bad path");
    attrs.push_back(nullptr);
    std::vector<const char*> cpaths;
    for (auto& p : paths) {
        cpaths.push_back(p.c_str());
    }
    std::vector<int> codes(paths.size(), -1);
    ZH_ASSERT(zh_put_items(c_, cpaths.data(), attrs.data(), paths.size(), codes.data()));
    for (size_t k = 0; k < 10; ++k) {
        EXPECT_EQ(codes[k], ZH_OK);
        zh_attrs_free(attrs[k]);
    }
    EXPECT_EQ(codes[10], ZH_INVALID_ARGUMENT);
    zh_scan scan = {};
    scan.filter = "k >= 5";
    scan.limit = 3;
    zh_items* items = nullptr;
    ZH_ASSERT(zh_get_items(c_, "/demo/t", &scan, &items));
    ASSERT_EQ(zh_items_count(items), 3u);
    EXPECT_STREQ(zh_items_name(items, 0), "k5");
    ZH_ASSERT(zh_attrs_get_int64(zh_items_attrs(items, 2), "k", &i));
    EXPECT_EQ(i, 7);
    EXPECT_FALSE(zh_items_done(items));
    std::string next = zh_items_next_marker(items);
    zh_items_free(items);
    scan.marker = next.c_str();
    ZH_ASSERT(zh_get_items(c_, "/demo/t", &scan, &items));
    EXPECT_EQ(zh_items_count(items), 2u);
    zh_items_free(items);
}

TEST_F(CApiTest, StreamsPutSeekAndRead) {
    ZH_ASSERT(zh_create_stream(c_, "/demo/s", 2, 3600));
    uint32_t shards = 0;
    int64_t retention = 0;
    ZH_ASSERT(zh_describe_stream(c_, "/demo/s", &shards, &retention));
    EXPECT_TRUE(shards == 2 && retention == 3600);
    zh_record_input in[3] = {{"a", 1, 1, nullptr}, {"bb", 2, 1, nullptr}, {"c", 1, 5, nullptr}};
    zh_record_result out[3];
    ZH_ASSERT(zh_put_records(c_, "/demo/s", in, 3, out));
    EXPECT_TRUE(out[0].code == ZH_OK && out[0].shard == 1 && out[0].sequence == 1);
    EXPECT_EQ(out[1].sequence, 2u);
    EXPECT_NE(out[2].code, ZH_OK);  // no shard 5
    uint64_t seq = 0;
    ZH_ASSERT(zh_seek(c_, "/demo/s", 1, ZH_SEEK_EARLIEST, 0, 0, 0, &seq));
    zh_records* r = nullptr;
    ZH_ASSERT(zh_get_records(c_, "/demo/s", 1, seq, 0, 0, &r));
    ASSERT_EQ(zh_records_count(r), 2u);
    zh_record rec;
    ZH_ASSERT(zh_records_get(r, 1, &rec));
    EXPECT_EQ(std::string(static_cast<const char*>(rec.data), rec.size), "bb");
    EXPECT_EQ(rec.sequence, 2u);
    EXPECT_EQ(zh_records_next_sequence(r), 3u);
    EXPECT_EQ(zh_records_get(r, 2, &rec), ZH_OUT_OF_RANGE);
    zh_records_free(r);
    ZH_ASSERT(zh_seek(c_, "/demo/s", 1, ZH_SEEK_LATEST, 0, 0, 0, &seq));
    EXPECT_EQ(seq, 3u);
    EXPECT_EQ(zh_seek(c_, "/demo/s", 1, 9, 0, 0, 0, &seq), ZH_INVALID_ARGUMENT);
    ZH_ASSERT(zh_delete_stream(c_, "/demo/s"));
}

TEST_F(CApiTest, SyncNopStatusAndRights) {
    ZH_ASSERT(zh_sync(c_));
    ZH_ASSERT(zh_nop(c_));
    zh_daemon_status st;
    ZH_ASSERT(zh_status(c_, &st));
    EXPECT_EQ(st.workers, 2u);
    EXPECT_GE(st.sessions_open, 1u);
    zh_options o = {};
    o.socket_path = daemon_->socket().c_str();
    o.access_key = "ro-key";
    zh_client* ro = zh_connect(&o);
    ASSERT_NE(ro, nullptr) << zh_last_error();
    EXPECT_EQ(zh_put(ro, "/demo/x", "x", 1, nullptr, nullptr, nullptr), ZH_PERMISSION_DENIED);
    zh_close(ro);
}

TEST_F(CApiTest, ADeadlineBoundsTheThreadsCallsUntilCleared) {
    ASSERT_EQ(zh_put(c_, "/demo/d", "x", 1, nullptr, nullptr, nullptr), ZH_OK) << zh_last_error();
    kill(daemon_->pid(), SIGSTOP);  // a daemon that answers nothing, once all its threads stopped
    auto stopped = [&] {
        for (const auto& task : std::filesystem::directory_iterator(absl::StrCat("/proc/", daemon_->pid(), "/task"))) {
            std::ifstream f(task.path() / "stat");
            std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
            if (stat.find(") T ") == std::string::npos) {
                return false;
            }
        }
        return true;
    };
    for (int i = 0; i < 1000 && !stopped(); ++i) {
        absl::SleepFor(absl::Milliseconds(2));
    }
    absl::Time start = absl::Now();
    zh_set_deadline(absl::ToUnixNanos(start + absl::Milliseconds(200)));
    zh_info info;
    EXPECT_EQ(zh_stat(c_, "/demo/d", &info), ZH_DEADLINE_EXCEEDED);
    EXPECT_NE(std::string(zh_last_error()).find("by the caller's deadline"), std::string::npos) << zh_last_error();
    EXPECT_LT(absl::Now() - start, absl::Seconds(5));  // not the client's 30 s
    kill(daemon_->pid(), SIGCONT);
    zh_set_deadline(absl::ToUnixNanos(absl::Now() + absl::Seconds(20)));
    EXPECT_EQ(zh_stat(c_, "/demo/d", &info), ZH_OK) << zh_last_error();
    zh_set_deadline(0);
    EXPECT_EQ(zh_stat(c_, "/demo/d", &info), ZH_OK) << zh_last_error();
    EXPECT_EQ(info.size, 1u);
}

TEST_F(CApiTest, TheCExampleRuns) {
    const char* bin = getenv("ZH_C_EXAMPLE");
    ASSERT_NE(bin, nullptr) << "ZH_C_EXAMPLE must name examples/c_api";
    int status = 0;
    std::string out = Run(std::string(bin) + " /demo", &status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("/demo/c-example/alice: visits=1"), std::string::npos) << out;
    EXPECT_NE(out.find("hello from C"), std::string::npos) << out;
    EXPECT_NE(out.find("2 records from sequence 1"), std::string::npos) << out;
}

TEST_F(CApiTest, PythonBindsItWithCtypes) {
    const char* script = getenv("ZH_PY_EXAMPLE");
    const char* lib = getenv("ZH_LIBZEROHOP");
    ASSERT_TRUE(script != nullptr && lib != nullptr) << "ZH_PY_EXAMPLE and ZH_LIBZEROHOP must be set";
    int status = 0;
    // A sanitizer build's library needs its runtime loaded first (and Python's own
    // allocations at exit are not ours to report).
    std::string preload;
    if (const char* p = getenv("ZH_SANITIZER_PRELOAD"); p != nullptr && *p != '\0') {
        preload = std::string("LD_PRELOAD=") + p + " ASAN_OPTIONS=detect_leaks=0 ";
    }
    std::string out = Run(preload + "LIBZEROHOP=" + lib + " python3 " + script + " /demo", &status);
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("'visits': 1"), std::string::npos) << out;
    EXPECT_NE(out.find("object: b'\\x00\\x01binary\\xff' size 9"), std::string::npos) << out;
    EXPECT_NE(out.find("conditional put refused"), std::string::npos) << out;
}

}  // namespace
}  // namespace zerohop
