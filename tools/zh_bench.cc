// zh-bench: benchmarks with their baselines run side by side in the same process.
//
//   zh-bench                       # every suite, a table
//   zh-bench --suite embedded --json
//   zh-bench --suite expr --duration-ms 500
//
// Each workload reports ops/s and p50/p99/p999 latency; where a baseline exists (raw
// RocksDB for the embedded store, memcpy for object bytes) it runs in the same process
// right after, and `ratio` is ours / baseline for throughput (higher is better).

#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_format.h"
#include "embedded/embedded_backend.h"
#include "expr/expression.h"
#include "rocksdb/db.h"
#include "bench_csi.h"
#include "bench_fuse.h"
#include "bench_procs.h"
#include "bench_redis.h"
#include "bench_harness.h"
#include "bench_load.h"
#include "bench_peer.h"
#include "bench_shm.h"

namespace zerohop {
namespace {

// ---- expressions ---------------------------------------------------------------------

std::vector<Comparison> ExprSuite(std::chrono::milliseconds d) {
    std::vector<Comparison> out;
    std::string big;
    for (int i = 0; big.size() < 4000; ++i) {
        absl::StrAppend(&big, i ? " OR " : "", "(attr", i, " >= ", i * 7, " AND starts(name", i, ", 'prefix",
                        i, "'))");
    }
    out.push_back({Measure(absl::StrCat("expr_parse_", big.size(), "B"), d, [&] {
        auto c = expr::Condition::Parse(big);
        if (!c.ok()) {
            std::abort();
        }
    })});
    out.push_back({Measure("expr_parse_typical", d, [&] {
        auto c = expr::Condition::Parse("(bugs < 15) AND starts(Product_Name, 'Car')");
        if (!c.ok()) {
            std::abort();
        }
    })});

    AttributeMap attrs{{"bugs", Value::Int64(10)},
                       {"Product_Name", Value::String("Car-X-2000")},
                       {"State", Value::String("NY")},
                       {"age", Value::Int64(40)},
                       {"price", Value::Double(9.5)},
                       {"tags", Value::Int64Array({1, 2, 3, 4})}};
    std::string encoded;
    EncodeAttributes(attrs, &encoded);
    ObjectInfo info;
    auto cond = expr::Condition::Parse("(bugs < 15) AND starts(Product_Name, 'Car') AND NOT(State IN ('AZ','MA'))");
    Check(cond.status(), "parse");
    volatile bool sink = false;
    expr::MapAttributes map_item(&attrs, "item", &info);
    out.push_back({Measure("expr_eval_map_item", d, [&] { sink = cond->Matches(map_item); })});
    expr::EncodedItemAttributes enc_item(EncodedAttributes(encoded), "item", &info);
    out.push_back({Measure("expr_eval_encoded_item", d, [&] { sink = cond->Matches(enc_item); })});
    auto update = expr::Update::Parse("SET bugs = bugs + 1; visits = if_not_exists(visits, 0) + 1");
    Check(update.status(), "parse update");
    out.push_back({Measure("expr_update_apply", d, [&] {
        AttributeMap copy = attrs;
        Check(update->Apply(&copy, "item", &info), "apply");
    })});
    (void)sink;
    return out;
}

// ---- embedded store --------------------------------------------------------------------

class RawRocks {
public:
    explicit RawRocks(const std::string& dir) {
        rocksdb::Options o;
        o.create_if_missing = true;
        rocksdb::DB* raw = nullptr;
        Check(rocksdb::DB::Open(o, dir, &raw).ok() ? absl::OkStatus() : absl::InternalError("open raw rocksdb"),
              "baseline");
        db_.reset(raw);
    }
    rocksdb::DB* db() { return db_.get(); }

private:
    std::unique_ptr<rocksdb::DB> db_;
};

std::vector<Comparison> EmbeddedSuite(std::chrono::milliseconds d, const std::string& dir) {
    std::vector<Comparison> out;
    EmbeddedOptions opts;
    opts.dir = dir + "/store";
    opts.containers = {"bench"};
    opts.maintenance_interval = absl::ZeroDuration();
    opts.io_threads = 0;  // the engine itself, on this thread: every completion runs inline
    auto opened = EmbeddedBackend::Open(opts);
    Check(opened.status(), "open store");
    EmbeddedBackend& b = **opened;
    RawRocks raw(dir + "/raw");

    constexpr int kItems = 100000;
    const std::string value100(100, 'v');
    Check(AwaitStatus([&](auto done) {
              b.Mkdir({.path = *Path::Parse("/bench/t")},
                      [done = std::move(done)](absl::StatusOr<ObjectInfo> r) mutable { std::move(done)(r.status()); });
          }),
          "mkdir");
    std::vector<Path> keys;
    keys.reserve(kItems);
    for (int i = 0; i < kItems; ++i) {
        keys.push_back(*Path::Parse(absl::StrCat("/bench/t/item", i)));
        AttributeMap attrs{{"v", Value::String(value100)}};
        absl::Status s;
        b.PutItem({.path = keys.back(), .attributes = attrs}, [&](absl::StatusOr<ObjectInfo> r) { s = r.status(); });
        Check(s, "load");
        raw.db()->Put(rocksdb::WriteOptions(), absl::StrCat("item", i), value100);
    }
    std::mt19937_64 rng(42);
    auto pick = [&] { return rng() % kItems; };

    // get_item: the embedded backend called directly, its completion inline. First from
    // the memory table (just written), then from a settled store (flushed to table files).
    auto get_item = [&](const std::string& name) {
        Comparison c;
        GetItemRequest req;
        c.ours = Measure(name, d, [&] {
            req.path = keys[pick()];
            b.GetItem(req, [](absl::StatusOr<Item> r) {
                if (!r.ok()) {
                    std::abort();
                }
            });
        });
        std::string v;
        c.baseline = Measure("rocksdb_get_100B", d, [&] {
            if (!raw.db()->Get(rocksdb::ReadOptions(), absl::StrCat("item", pick()), &v).ok()) {
                std::abort();
            }
        });
        c.baseline_name = "raw RocksDB Get (default options), same value";
        out.push_back(std::move(c));
    };
    get_item("embedded_get_item_100B_memtable");
    Check(b.Flush(), "flush");
    Check(raw.db()->Flush(rocksdb::FlushOptions()).ok() ? absl::OkStatus() : absl::InternalError("flush"), "flush");
    // Warm: every item read once, as a store that has been serving for a while.
    for (int i = 0; i < kItems; ++i) {
        std::string v;
        b.GetItem({.path = keys[i]}, [](absl::StatusOr<Item> r) {
            if (!r.ok()) {
                std::abort();
            }
        });
        raw.db()->Get(rocksdb::ReadOptions(), absl::StrCat("item", i), &v);
    }
    get_item("embedded_get_item_100B_settled");
    {
        Comparison c;
        int n = 0;
        c.ours = Measure("embedded_put_item_100B", d, [&] {
            AttributeMap attrs{{"v", Value::String(value100)}, {"n", Value::Int64(n++)}};
            b.PutItem({.path = keys[pick()], .attributes = std::move(attrs)}, [](absl::StatusOr<ObjectInfo> r) {
                if (!r.ok()) {
                    std::abort();
                }
            });
        });
        c.baseline = Measure("rocksdb_put_100B", d, [&] {
            if (!raw.db()->Put(rocksdb::WriteOptions(), absl::StrCat("item", pick()), value100).ok()) {
                std::abort();
            }
        });
        c.baseline_name = "raw RocksDB Put, same value";
        out.push_back(std::move(c));
    }
    {
        Comparison c;
        c.ours = Measure("embedded_update_item_counter", d, [&] {
            b.UpdateItem({.path = keys[pick()], .update = "n = if_not_exists(n, 0) + 1"},
                         [](absl::StatusOr<ObjectInfo> r) {
                             if (!r.ok()) {
                                 std::abort();
                             }
                         });
        });
        out.push_back(std::move(c));
    }
    // get_items: one page of up to 1000 items through a filter that keeps about half.
    {
        Comparison c;
        c.ours = MeasureEach("embedded_get_items_page1000_filter", d, [&] {
            b.GetItems({.path = *Path::Parse("/bench/t"), .filter = "n >= 0 OR length(v) == 100",
                        .marker = absl::StrCat("item", pick()), .limit = 1000},
                       [](absl::StatusOr<GetItemsResult> r) {
                           if (!r.ok()) {
                               std::abort();
                           }
                       });
        });
        c.ours.unit = "page of 1000";
        out.push_back(std::move(c));
    }
    // Streams.
    {
        Path stream = *Path::Parse("/bench/s");
        b.CreateStream({.path = stream, .shard_count = 4}, [](absl::StatusOr<ObjectInfo> r) { Check(r.status(), "stream"); });
        Comparison put;
        put.ours = Measure("embedded_put_records_1x100B", d, [&] {
            b.PutRecords({.path = stream, .records = {{.data = value100}}}, [](auto r) {
                if (!r.ok()) {
                    std::abort();
                }
            });
        });
        out.push_back(std::move(put));
        Comparison get;
        uint64_t seq = 1;
        get.ours = Measure("embedded_get_records_100x100B", d, [&] {
            b.GetRecords({.path = stream, .location = {0, seq}, .limit = 100}, [&](absl::StatusOr<GetRecordsResult> r) {
                if (!r.ok()) {
                    std::abort();
                }
                seq = r->records.empty() ? 1 : r->next.sequence;
            });
        });
        get.ours.unit = "page of 100";
        out.push_back(std::move(get));
    }
    // 1 MiB objects: files, read into memory through the sink; baseline memcpy of 1 MiB.
    {
        constexpr size_t kMiB = 1 << 20;
        std::string data(kMiB, 'x');
        Path obj = *Path::Parse("/bench/obj1m");
        Comparison put;
        put.ours = MeasureEach("embedded_put_object_1MiB", d, [&] {
            StringSource src(data);
            b.PutObject({.path = obj}, &src, [](absl::StatusOr<ObjectInfo> r) {
                if (!r.ok()) {
                    std::abort();
                }
            });
        }, kMiB);
        std::string dst(kMiB, '\0');
        put.baseline = MeasureEach("memcpy_1MiB", d, [&] {
            std::memcpy(dst.data(), data.data(), kMiB);
            asm volatile("" : : "r"(dst.data()) : "memory");
        }, kMiB);
        put.baseline_name = "memcpy 1 MiB";
        out.push_back(std::move(put));
        Comparison get;
        std::string buf;
        buf.reserve(kMiB);
        get.ours = MeasureEach("embedded_get_object_1MiB", d, [&] {
            buf.clear();
            StringSink sink(&buf);
            b.GetObject({.path = obj}, &sink, [](absl::StatusOr<GetObjectResult> r) {
                if (!r.ok()) {
                    std::abort();
                }
            });
        }, kMiB);
        get.baseline = put.baseline;
        get.baseline_name = "memcpy 1 MiB";
        out.push_back(std::move(get));
    }
    return out;
}

}  // namespace
}  // namespace zerohop

namespace zerohop {

// zh-bench --suite python: tools/bench_python.py (beside this binary in the build tree) with
// Debian's python3, the package built beside it and this build's zerohopd.
void PythonSuite(std::chrono::milliseconds d, bool json) {
    std::string zerohopd = FindZerohopd();
    std::string build = zerohopd.substr(0, zerohopd.rfind('/')) + "/..";
    std::string cmd = absl::StrFormat("PYTHONPATH='%s/client/python' /usr/bin/python3 '%s/tools/bench_python.py' "
                                      "--zerohopd '%s' --duration-ms %d%s",
                                      build, build, zerohopd, d.count(), json ? " --json" : "");
    if (std::system(cmd.c_str()) != 0) {
        std::cerr << "zh-bench: the python suite failed (it needs the Python package built, python3-redis and "
                     "redis-server: tools/install-deps.sh)\n";
    }
}

// zh-bench --soak MINUTES: tools/soak.py (beside this binary in the build tree) with Debian's
// python3, the package built beside it, this build's zerohopd and zerohop-fuse. Its exit
// status is the soak's verdict.
int Soak(double minutes, bool json) {
    std::string zerohopd = FindZerohopd();
    std::string build = zerohopd.substr(0, zerohopd.rfind('/')) + "/..";
    std::string cmd = absl::StrFormat("PYTHONPATH='%s/client/python' /usr/bin/python3 '%s/tools/soak.py' "
                                      "--minutes %g --zerohopd '%s' --fuse '%s/fuse/zerohop-fuse'%s",
                                      build, build, minutes, zerohopd, build, json ? " --json" : "");
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

}  // namespace zerohop

int main(int argc, char** argv) {
    // Debian builds abseil with the Mutex deadlock detector on: tens of ns per lock.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    if (argc > 1 && std::string(argv[1]) == "--redis-worker") {
        return zerohop::RedisWorker(argc, argv);
    }
    if (argc > 1 && std::string(argv[1]) == "--peer-worker") {
        return zerohop::PeerWorker(argc, argv);
    }
    std::string suite = "all";
    bool json = false;
    int duration_ms = 2000;
    std::string dir;
    bool load = false;
    double soak_minutes = 0;
    std::string workload_file;
    std::vector<std::pair<std::string, std::string>> load_flags;  // applied over the file
    const std::string usage =
        "usage: zh-bench [--suite all|expr|embedded|shm|fuse|csi|redis|peer|python] [--json] [--duration-ms N] [--dir DIR]\n"
        "       zh-bench --load [--workload FILE] [--mix get_item=80,put_item=20] [--value-size N] [--keys N]\n"
        "                [--threads N] [--depth N] [--duration-ms N] [--spin-us N] [--socket PATH --key KEY]\n"
        "                [--no-baseline] [--json]\n"
        "       zh-bench --soak MINUTES [--json]   (root: it mounts zerohop-fuse)\n"
        "  Suites run each fixed workload for N ms (default 2000) with its baseline in the same run.\n"
        "  --load drives a workload of your own (operations: get_item, put_item, update_item, get_object,\n"
        "  put_object, nop) through libzerohop, then the same workload through Redis, and reports ops/s and\n"
        "  p50/p99/p999 per operation and in total. Without --socket it starts its own zerohopd.\n"
        "  --soak runs a mixed load with periodic kills of clients, zerohop-fuse and zerohopd, samples the\n"
        "  daemon's RSS and descriptors, and ends with the ledger's verdict (docs/RELIABILITY.md).\n";
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "zh-bench: " << a << " needs a value\n" << usage;
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--suite") {
            suite = value();
        } else if (a == "--json") {
            json = true;
        } else if (a == "--duration-ms") {
            duration_ms = std::atoi(value().c_str());
            load_flags.emplace_back("duration_ms", std::to_string(duration_ms));
        } else if (a == "--dir") {
            dir = value();
        } else if (a == "--soak") {
            soak_minutes = std::atof(value().c_str());
        } else if (a == "--load") {
            load = true;
        } else if (a == "--workload") {
            load = true;
            workload_file = value();
        } else if (a == "--no-baseline") {
            load_flags.emplace_back("baseline", "false");
        } else if (a == "--mix" || a == "--value-size" || a == "--keys" || a == "--threads" || a == "--depth" ||
                   a == "--spin-us" || a == "--socket" || a == "--key") {
            std::string name = a.substr(2);
            std::replace(name.begin(), name.end(), '-', '_');
            load_flags.emplace_back(name, value());
        } else {
            std::cout << usage;
            return a == "--help" || a == "-h" ? 0 : 2;
        }
    }
    if (soak_minutes > 0) {
        return zerohop::Soak(soak_minutes, json);
    }
    bool own_dir = dir.empty();
    if (own_dir) {
        char tmpl[] = "/tmp/zh-bench-XXXXXX";
        dir = mkdtemp(tmpl);
    }
    auto d = std::chrono::milliseconds(duration_ms);
    if (load) {
        zerohop::LoadSpec spec;
        if (!workload_file.empty()) {
            auto read = zerohop::ReadLoadFile(workload_file, spec);
            zerohop::Check(read.status(), "workload");
            spec = *read;
        }
        for (const auto& [name, v] : load_flags) {
            zerohop::Check(spec.Set(name, v), "flag");
        }
        zerohop::Check(spec.Validate(), "workload");
        if (json) {
            std::cout << "{\"workload\": \"" << spec.Describe() << "\"}\n";
        } else {
            std::cout << "workload: " << spec.Describe() << "\n";
        }
        for (auto& c : zerohop::RunLoad(spec, dir)) {
            zerohop::Print(c, json);
        }
    } else {
        if (suite == "all" || suite == "expr") {
            for (auto& c : zerohop::ExprSuite(d)) {
                zerohop::Print(c, json);
            }
        }
        if (suite == "all" || suite == "shm") {
            for (auto& c : zerohop::ShmSuite(d, dir, json)) {
                zerohop::Print(c, json);
            }
        }
        if (suite == "all" || suite == "embedded") {
            for (auto& c : zerohop::EmbeddedSuite(d, dir)) {
                zerohop::Print(c, json);
            }
        }
        if (suite == "all" || suite == "fuse") {
            for (auto& c : zerohop::FuseSuite(d, dir)) {
                zerohop::Print(c, json);
            }
        }
        if (suite == "all" || suite == "peer") {
            for (auto& c : zerohop::PeerSuite(d, dir)) {
                zerohop::Print(c, json);
            }
        }
        if (suite == "all" || suite == "csi") {
            for (auto& c : zerohop::CsiSuite(d, dir)) {
                zerohop::Print(c, json);
            }
        }
        if (suite == "all" || suite == "python") {
            zerohop::PythonSuite(d, json);
        }
        if (suite == "all" || suite == "redis") {
            char self[4096];
            ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
            for (auto& c : zerohop::RedisSuite(d, dir, n > 0 ? std::string(self, static_cast<size_t>(n)) : argv[0])) {
                zerohop::Print(c, json);
            }
        }
    }
    if (own_dir) {
        std::filesystem::remove_all(dir);
    }
    return 0;
}
