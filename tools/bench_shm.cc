// zh-bench --suite shm: the shared-memory path against its baselines, in one run.
//
// Starts its own zerohopd (on a temporary embedded store) and its own redis-server on
// loopback, then measures the same workloads through both.

#include "bench_shm.h"

#include "bench_procs.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "zerohop/client.h"

namespace zerohop {

std::vector<Comparison> ShmSuite(std::chrono::milliseconds d, const std::string& dir, bool json) {
    std::vector<Comparison> out;
    BenchDaemon daemon = StartBenchDaemon(
        dir, 1,
        "limits: {max_sessions: 2000}\n" +
            (getenv("ZH_BENCH_WAIT_WITH") ? absl::StrCat("wait_with: ", getenv("ZH_BENCH_WAIT_WITH"), "\n") : ""));
    BenchRedis redis = StartBenchRedis();
    ClientOptions opts = daemon.options;
    std::unique_ptr<Client> client = ConnectWaiting(opts);
    redisContext* rc = ConnectRedis(redis.port);
    // 1. get_item, synchronous and 16 in flight, against GET over loopback.
    Path key = *Path::Parse("/bench/item");  // (put there by CompareGetItemWithRedis)
    for (auto& c : CompareGetItemWithRedis("shm", d, *client, rc)) {
        out.push_back(std::move(c));
    }
    // 2. a no-op through the rings, asynchronous, one thread, 64 in flight.
    {
        Comparison c;
        constexpr int kDepth = 64;
        c.ours = Measure("shm_nop_async_depth64", d, [&] {
            int done = 0;
            for (int i = 0; i < kDepth; ++i) {
                client->NopAsync([&done](absl::Status) { ++done; });
            }
            while (done < kDepth) {
                if (client->Poll() == 0) {
                    client->WaitAndPoll(absl::Milliseconds(10));
                }
            }
        });
        c.ours.ops_per_s *= kDepth;
        c.ours.unit = "op (timed per batch of 64)";
        out.push_back(std::move(c));
    }
    // 4. get of a 1 MiB object against memcpy of 1 MiB.
    {
        constexpr size_t kMiB = 1 << 20;
        std::string data(kMiB, 'o');
        Path obj = *Path::Parse("/bench/obj1m");
        Check(client->PutObject({.path = obj}, data).status(), "put 1 MiB");
        Comparison c;
        // In place: the view's bytes are the daemon's copy from the page cache; reading them
        // is left to the caller, as with memcpy's destination.
        c.ours = MeasureEach("shm_get_object_1MiB_view", d, [&] {
            auto r = client->GetObjectView({.path = obj});
            if (!r.ok() || r->data().size() != kMiB) {
                std::abort();
            }
        }, kMiB);
        std::string dst(kMiB, '\0');
        c.baseline = MeasureEach("memcpy_1MiB", d, [&] {
            std::memcpy(dst.data(), data.data(), kMiB);
            asm volatile("" : : "r"(dst.data()) : "memory");
        }, kMiB);
        c.baseline_name = "memcpy 1 MiB, one thread, source and destination in cache";
        // The same copy from a source that is not in cache, as the object's page-cache bytes
        // are not: a 256 MiB ring of sources, one MiB at a time.
        Comparison cold;
        cold.ours = c.ours;
        cold.ours.name = "shm_get_object_1MiB_view_vs_dram";
        std::string ring(256u << 20, 'r');
        size_t at = 0;
        cold.baseline = MeasureEach("memcpy_1MiB_from_dram", d, [&] {
            std::memcpy(dst.data(), ring.data() + at, kMiB);
            asm volatile("" : : "r"(dst.data()) : "memory");
            at = (at + kMiB) % ring.size();
        }, kMiB);
        cold.baseline_name = "memcpy 1 MiB, one thread, source from DRAM";
        out.push_back(std::move(c));
        out.push_back(std::move(cold));
    }
    // 5. attach: connect, hello, map, first get.
    {
        Comparison c;
        ClientOptions small = opts;
        small.client_bytes = 1 << 20;
        small.daemon_bytes = 1 << 20;
        c.ours = MeasureEach("shm_attach_and_first_get", d, [&] {
            auto fresh = Client::Connect(small);
            if (!fresh.ok() || !(*fresh)->GetItem({.path = key}).ok()) {
                std::abort();
            }
        });
        out.push_back(std::move(c));
    }
    // 6. idle sessions: the daemon's CPU while 1,000 sessions sit idle, and memory per session.
    {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        double rss_before = RssBytes(daemon.process->pid());
        ClientOptions tiny = opts;
        tiny.submit_entries = 16;
        tiny.complete_entries = 16;
        tiny.client_bytes = 64 << 10;
        tiny.daemon_bytes = 64 << 10;
        std::vector<std::unique_ptr<Client>> idle;
        for (int i = 0; i < 1000; ++i) {
            auto c = Client::Connect(tiny);
            Check(c.status(), "idle session");
            Check((*c)->Nop(), "idle session nop");
            idle.push_back(std::move(*c));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        double rss_after = RssBytes(daemon.process->pid());
        double cpu0 = CpuSeconds(daemon.process->pid());
        std::this_thread::sleep_for(std::chrono::seconds(2));
        double cpu = (CpuSeconds(daemon.process->pid()) - cpu0) / 2;
        std::string line = absl::StrFormat(
            R"({"name": "shm_idle_sessions_1000", "sessions": 1000, "daemon_cpu_percent": %.2f, "daemon_rss_per_session_bytes": %.0f})",
            cpu * 100, (rss_after - rss_before) / 1000);
        if (json) {
            std::cout << line << "\n";
        } else {
            std::cout << absl::StrFormat("%-34s daemon CPU %.2f%% of a core; daemon RSS %.0f bytes per session\n",
                                         "shm_idle_sessions_1000", cpu * 100, (rss_after - rss_before) / 1000);
        }
    }
    redisFree(rc);
    return out;
}

}  // namespace zerohop
