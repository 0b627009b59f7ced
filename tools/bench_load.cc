#include "bench_load.h"

#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bench_procs.h"
#include "zerohop/client.h"

namespace zerohop {

namespace {

const char* const kOps[] = {"get_item", "put_item", "update_item", "get_object", "put_object", "nop"};

bool KnownOp(const std::string& op) {
    for (const char* k : kOps) {
        if (op == k) {
            return true;
        }
    }
    return false;
}

// The same operation through Redis.
std::string RedisName(const std::string& op) {
    if (op == "get_item" || op == "get_object") {
        return "GET";
    }
    if (op == "put_item" || op == "put_object") {
        return "SET";
    }
    if (op == "update_item") {
        return "INCR";
    }
    return "PING";
}

// Latency samples (us) of each operation of the mix, and how many completed.
struct Samples {
    std::vector<std::vector<double>> by_op;
    explicit Samples(size_t ops) : by_op(ops) {}
    void Merge(Samples& other) {
        for (size_t i = 0; i < by_op.size(); ++i) {
            by_op[i].insert(by_op[i].end(), other.by_op[i].begin(), other.by_op[i].end());
        }
    }
};

// Draws operations by weight and keys uniformly.
class Picker {
public:
    Picker(const LoadSpec& spec, uint64_t seed) : rng_(seed), keys_(spec.keys) {
        std::vector<double> w;
        for (const auto& [op, weight] : spec.mix) {
            w.push_back(weight);
        }
        ops_ = std::discrete_distribution<size_t>(w.begin(), w.end());
    }
    size_t Op() { return ops_(rng_); }
    size_t Key() { return rng_() % keys_; }

private:
    std::mt19937_64 rng_;
    std::discrete_distribution<size_t> ops_;
    size_t keys_;
};

double Us(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); }

// The objects a get_object may hit: at most 256 MiB of them.
size_t ObjectKeys(const LoadSpec& s) { return std::max<size_t>(1, std::min(s.keys, (256u << 20) / std::max<size_t>(s.value_size, 1))); }

// One thread's session, keeping `depth` requests in flight until the deadline.
void DriveZerohop(const LoadSpec& spec, Client& c, uint64_t seed, Clock::time_point deadline, Samples* out) {
    Picker pick(spec, seed);
    const std::string value(spec.value_size, 'v');
    const Path items = *Path::Parse("/bench/load");
    const Path objects = *Path::Parse("/bench/load-objects");
    const size_t object_keys = ObjectKeys(spec);
    int in_flight = 0;
    bool failed = false;
    auto issue = [&] {
        size_t op = pick.Op();
        const std::string& name = spec.mix[op].first;
        auto start = Clock::now();
        ++in_flight;
        auto record = [&, op, start](bool ok) {
            --in_flight;
            failed |= !ok;
            out->by_op[op].push_back(Us(start, Clock::now()));
        };
        if (name == "get_item") {
            c.GetItemAsync({.path = *items.Child(absl::StrCat("k", pick.Key()))},
                           [record](absl::StatusOr<Item> r) { record(r.ok()); });
        } else if (name == "put_item") {
            c.PutItemAsync({.path = *items.Child(absl::StrCat("k", pick.Key())), .attributes = {{"v", Value::String(value)}}},
                           [record](absl::StatusOr<ObjectInfo> r) { record(r.ok()); });
        } else if (name == "update_item") {
            c.UpdateItemAsync({.path = *items.Child(absl::StrCat("n", pick.Key())), .update = "n = if_not_exists(n, 0) + 1"},
                              [record](absl::StatusOr<ObjectInfo> r) { record(r.ok()); });
        } else if (name == "get_object") {
            c.GetObjectAsync({.path = *objects.Child(absl::StrCat("o", pick.Key() % object_keys))},
                             [record, size = spec.value_size](absl::StatusOr<ObjectView> r) {
                                 record(r.ok() && r->data().size() == size);
                             });
        } else if (name == "put_object") {
            c.PutObjectAsync({.path = *objects.Child(absl::StrCat("o", pick.Key() % object_keys))}, value,
                             [record](absl::StatusOr<ObjectInfo> r) { record(r.ok()); });
        } else {
            c.NopAsync([record](absl::Status s) { record(s.ok()); });
        }
    };
    while (Clock::now() < deadline) {
        while (in_flight < spec.depth) {
            issue();
        }
        if (c.Poll() == 0) {
            c.WaitAndPoll(absl::Milliseconds(10));
        }
    }
    while (in_flight > 0) {
        c.WaitAndPoll(absl::Milliseconds(10));
    }
    Check(failed ? absl::InternalError("an operation of the load failed") : absl::OkStatus(), "load");
}

// The same workload through one hiredis connection: `depth` commands pipelined at a time
// (each command's latency is its batch's).
void DriveRedis(const LoadSpec& spec, redisContext* rc, uint64_t seed, Clock::time_point deadline, Samples* out) {
    Picker pick(spec, seed);
    const std::string value(spec.value_size, 'v');
    const size_t object_keys = ObjectKeys(spec);
    std::vector<size_t> batch(spec.depth);
    while (Clock::now() < deadline) {
        auto start = Clock::now();
        for (int i = 0; i < spec.depth; ++i) {
            size_t op = pick.Op();
            batch[i] = op;
            const std::string& name = spec.mix[op].first;
            if (name == "get_item") {
                redisAppendCommand(rc, "GET k%llu", static_cast<unsigned long long>(pick.Key()));
            } else if (name == "put_item") {
                redisAppendCommand(rc, "SET k%llu %b", static_cast<unsigned long long>(pick.Key()), value.data(), value.size());
            } else if (name == "update_item") {
                redisAppendCommand(rc, "INCR n%llu", static_cast<unsigned long long>(pick.Key()));
            } else if (name == "get_object") {
                redisAppendCommand(rc, "GET o%llu", static_cast<unsigned long long>(pick.Key() % object_keys));
            } else if (name == "put_object") {
                redisAppendCommand(rc, "SET o%llu %b", static_cast<unsigned long long>(pick.Key() % object_keys), value.data(),
                                   value.size());
            } else {
                redisAppendCommand(rc, "PING");
            }
        }
        for (int i = 0; i < spec.depth; ++i) {
            void* r = nullptr;
            if (redisGetReply(rc, &r) != REDIS_OK || static_cast<redisReply*>(r)->type == REDIS_REPLY_ERROR) {
                Check(absl::InternalError("a Redis command of the load failed"), "redis load");
            }
            freeReplyObject(r);
        }
        double us = Us(start, Clock::now());
        for (int i = 0; i < spec.depth; ++i) {
            out->by_op[batch[i]].push_back(us);
        }
    }
}

// Runs `drive(thread, deadline, samples)` on spec.threads threads; the merged samples and
// the seconds they took.
template <typename Drive>
std::pair<Samples, double> RunThreads(const LoadSpec& spec, Drive drive) {
    std::vector<Samples> per(spec.threads, Samples(spec.mix.size()));
    std::vector<std::thread> threads;
    auto start = Clock::now();
    auto deadline = start + spec.duration;
    for (int t = 0; t < spec.threads; ++t) {
        threads.emplace_back([&, t] { drive(t, deadline, &per[t]); });
    }
    for (auto& th : threads) {
        th.join();
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    Samples all(spec.mix.size());
    for (auto& s : per) {
        all.Merge(s);
    }
    return {std::move(all), secs};
}

std::vector<Result> Summaries(const LoadSpec& spec, Samples& s, double secs, const std::string& prefix,
                              bool redis_names) {
    std::vector<Result> out;
    std::vector<double> total;
    for (size_t i = 0; i < spec.mix.size(); ++i) {
        const std::string& op = spec.mix[i].first;
        total.insert(total.end(), s.by_op[i].begin(), s.by_op[i].end());
        if (s.by_op[i].empty()) {
            out.push_back(Result{.name = prefix + op});
            continue;
        }
        out.push_back(Summarize(prefix + (redis_names ? RedisName(op) + "_for_" + op : op), &s.by_op[i], secs,
                                op.ends_with("object") ? static_cast<double>(spec.value_size) : 0));
    }
    out.push_back(Summarize(prefix + "total", &total, secs, 0));
    return out;
}

}  // namespace

absl::Status LoadSpec::Set(const std::string& name, const std::string& value) {
    auto number = [&](auto* out) -> absl::Status {
        if (!absl::SimpleAtoi(value, out)) {
            return absl::InvalidArgumentError(absl::StrFormat("%s: \"%s\" is not a number", name, value));
        }
        return absl::OkStatus();
    };
    if (name == "mix") {
        mix.clear();
        for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
            std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
            std::string op(absl::StripAsciiWhitespace(kv.first));
            double w = 1;
            if (!kv.second.empty() && !absl::SimpleAtod(absl::StripAsciiWhitespace(kv.second), &w)) {
                return absl::InvalidArgumentError(absl::StrFormat("mix: weight \"%s\" of %s is not a number", kv.second, op));
            }
            mix.emplace_back(op, w);
        }
        return absl::OkStatus();
    }
    if (name == "value_size" || name == "value-size") {
        return number(&value_size);
    }
    if (name == "keys") {
        return number(&keys);
    }
    if (name == "spin_us" || name == "spin-us") {
        return number(&spin_us);
    }
    if (name == "threads") {
        return number(&threads);
    }
    if (name == "depth") {
        return number(&depth);
    }
    if (name == "duration_ms" || name == "duration-ms") {
        int64_t ms = 0;
        absl::Status s = number(&ms);
        duration = std::chrono::milliseconds(ms);
        return s;
    }
    if (name == "baseline") {
        if (value != "true" && value != "false") {
            return absl::InvalidArgumentError("baseline: expected true or false");
        }
        baseline = value == "true";
        return absl::OkStatus();
    }
    if (name == "socket") {
        socket = value;
        return absl::OkStatus();
    }
    if (name == "key" || name == "access_key") {
        access_key = value;
        return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "unknown setting \"%s\" (known: mix, value_size, keys, threads, depth, duration_ms, spin_us, baseline, socket, key)",
        name));
}

absl::Status LoadSpec::Validate() const {
    if (mix.empty()) {
        return absl::InvalidArgumentError("mix: no operations");
    }
    double sum = 0;
    for (const auto& [op, w] : mix) {
        if (!KnownOp(op)) {
            return absl::InvalidArgumentError(
                absl::StrFormat("mix: unknown operation \"%s\" (known: %s)", op, absl::StrJoin(kOps, ", ")));
        }
        if (w < 0) {
            return absl::InvalidArgumentError(absl::StrFormat("mix: negative weight for %s", op));
        }
        sum += w;
    }
    if (sum <= 0) {
        return absl::InvalidArgumentError("mix: the weights add up to nothing");
    }
    if (threads < 1 || threads > 256 || depth < 1 || depth > 4096 || keys < 1 || duration.count() < 1 ||
        spin_us < 0) {
        return absl::InvalidArgumentError("threads 1..256, depth 1..4096, keys >= 1, duration_ms >= 1, spin_us >= 0");
    }
    if (value_size > (64u << 20)) {
        return absl::InvalidArgumentError("value_size: at most 64 MiB");
    }
    return absl::OkStatus();
}

std::string LoadSpec::Describe() const {
    std::vector<std::string> parts;
    for (const auto& [op, w] : mix) {
        parts.push_back(absl::StrCat(op, "=", w));
    }
    return absl::StrFormat("mix=%s value_size=%d keys=%d threads=%d depth=%d duration_ms=%d spin_us=%d",
                           absl::StrJoin(parts, ","), value_size, keys, threads, depth, duration.count(), spin_us);
}

absl::StatusOr<LoadSpec> ReadLoadFile(const std::string& path, LoadSpec spec) {
    std::ifstream f(path);
    if (!f) {
        return absl::NotFoundError(absl::StrFormat("workload file %s: cannot open it", path));
    }
    std::string line;
    for (int n = 1; std::getline(f, line); ++n) {
        std::string content = line.substr(0, line.find('#'));
        absl::string_view l = absl::StripAsciiWhitespace(content);
        if (l.empty()) {
            continue;
        }
        std::pair<std::string, std::string> kv = absl::StrSplit(l, absl::MaxSplits('=', 1));
        if (kv.second.empty() && l.find('=') == absl::string_view::npos) {
            return absl::InvalidArgumentError(absl::StrFormat("%s:%d: expected name = value", path, n));
        }
        absl::Status s = spec.Set(std::string(absl::StripAsciiWhitespace(kv.first)),
                                  std::string(absl::StripAsciiWhitespace(kv.second)));
        if (!s.ok()) {
            return absl::InvalidArgumentError(absl::StrFormat("%s:%d: %s", path, n, s.message()));
        }
    }
    return spec;
}

std::vector<Comparison> RunLoad(const LoadSpec& spec, const std::string& dir) {
    // Room for `depth` bodies (and results) in flight, whatever the value size.
    ClientOptions opts;
    uint64_t room = std::max<uint64_t>(16u << 20, 4 * static_cast<uint64_t>(spec.depth) * (spec.value_size + 8192));
    std::optional<BenchDaemon> daemon;
    if (spec.socket.empty()) {
        // Workers spin while busy: never more of them than half the cores, so that the
        // client threads keep theirs.
        int cores = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
        daemon = StartBenchDaemon(dir, std::clamp(spec.threads, 1, cores / 2),
                                  absl::StrFormat("limits: {max_client_bytes: %d, max_daemon_bytes: %d, "
                                                  "max_in_flight: 4096}\n",
                                                  room, room));
        opts = daemon->options;
    } else {
        opts.socket_path = spec.socket;
        opts.access_key = spec.access_key;
    }
    opts.client_bytes = opts.daemon_bytes = room;
    opts.spin = absl::Microseconds(spec.spin_us);
    opts.submit_entries = opts.complete_entries = static_cast<uint32_t>(std::max(256, 2 * spec.depth));
    std::vector<std::unique_ptr<Client>> clients;
    for (int t = 0; t < spec.threads; ++t) {
        clients.push_back(ConnectWaiting(opts));
    }
    // The keys every read may hit.
    Client& c = *clients[0];
    const std::string value(spec.value_size, 'v');
    bool objects = false, items = false;
    for (const auto& [op, w] : spec.mix) {
        objects |= op.ends_with("object");
        items |= op == "get_item" || op == "put_item";
    }
    for (const char* dir_name : {"/bench/load", "/bench/load-objects"}) {
        absl::Status s = c.Mkdir({.path = *Path::Parse(dir_name)}).status();
        Check(absl::IsAlreadyExists(s) ? absl::OkStatus() : s, "mkdir");
    }
    // Batches of items that fit a quarter of the region.
    const size_t per_batch = std::clamp<size_t>(room / 4 / (spec.value_size + 256), 1, 1000);
    for (size_t k = 0; items && k < spec.keys; k += per_batch) {
        std::vector<PutItemRequest> batch;
        for (size_t i = k; i < std::min(spec.keys, k + per_batch); ++i) {
            batch.push_back({.path = *Path::Parse(absl::StrCat("/bench/load/k", i)), .attributes = {{"v", Value::String(value)}}});
        }
        Check(c.PutItems(batch).status(), "preload items");
    }
    for (size_t i = 0; objects && i < ObjectKeys(spec); ++i) {
        Check(c.PutObject({.path = *Path::Parse(absl::StrCat("/bench/load-objects/o", i))}, value).status(),
              "preload objects");
    }
    auto [ours_samples, ours_secs] = RunThreads(spec, [&](int t, Clock::time_point deadline, Samples* s) {
        DriveZerohop(spec, *clients[t], 1000 + t, deadline, s);
    });
    std::vector<Result> ours = Summaries(spec, ours_samples, ours_secs, "load_", false);

    std::vector<Result> theirs;
    if (spec.baseline) {
        BenchRedis redis = StartBenchRedis();
        std::vector<redisContext*> conns;
        for (int t = 0; t < spec.threads; ++t) {
            conns.push_back(ConnectRedis(redis.port));
        }
        for (size_t k = 0; k < spec.keys; ++k) {
            redisAppendCommand(conns[0], "SET k%llu %b", static_cast<unsigned long long>(k), value.data(), value.size());
        }
        for (size_t k = 0; objects && k < ObjectKeys(spec); ++k) {
            redisAppendCommand(conns[0], "SET o%llu %b", static_cast<unsigned long long>(k), value.data(), value.size());
        }
        size_t replies = spec.keys + (objects ? ObjectKeys(spec) : 0);
        for (size_t k = 0; k < replies; ++k) {
            void* r = nullptr;
            Check(redisGetReply(conns[0], &r) == REDIS_OK ? absl::OkStatus() : absl::InternalError(conns[0]->errstr),
                  "redis preload");
            freeReplyObject(r);
        }
        auto [redis_samples, redis_secs] = RunThreads(spec, [&](int t, Clock::time_point deadline, Samples* s) {
            DriveRedis(spec, conns[t], 1000 + t, deadline, s);
        });
        theirs = Summaries(spec, redis_samples, redis_secs, "redis_", true);
        for (redisContext* rc : conns) {
            redisFree(rc);
        }
    }
    std::vector<Comparison> out;
    for (size_t i = 0; i < ours.size(); ++i) {
        Comparison cmp;
        cmp.ours = ours[i];
        if (!theirs.empty() && theirs[i].ops_per_s > 0 && ours[i].ops_per_s > 0) {
            cmp.baseline = theirs[i];
            cmp.baseline_name = absl::StrFormat("Redis %s, same workload (hiredis, %d connections, pipelined %d deep)",
                                                i < spec.mix.size() ? RedisName(spec.mix[i].first) : "total",
                                                spec.threads, spec.depth);
        }
        out.push_back(std::move(cmp));
    }
    return out;
}

}  // namespace zerohop
