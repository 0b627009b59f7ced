// zh: every zerohop operation from the shell, through libzerohop and the node's zerohopd.
//
//   export ZEROHOP_SOCKET=/run/zerohop/zerohop.sock ZEROHOP_ACCESS_KEY=...
//   zh ls /users
//   echo hello | zh put /users/greeting
//   zh kv-put /users/people/alice age=40 name=Alice
//   zh scan /users/people --filter "age > 30" --attrs name,age --json
//
// Exit status: 0 ok, 2 bad usage or argument, 3 not found, 4 permission denied,
// 5 exists / condition false / not empty, 6 daemon unavailable, 1 anything else.

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_format.h"
#include "zerohop/client.h"
#include "zh_values.h"

namespace zerohop {
namespace {

constexpr char kUsage[] = R"(usage: zh [--socket PATH] [--key KEY] [--json] COMMAND [ARGS]

Commands:
  ls PATH                         list a directory (or / for the containers)
  stat PATH                       show an entry's system attributes
  mkdir PATH | rmdir PATH | rm PATH | mv FROM TO | ln -s TARGET PATH
  put PATH [FILE]                 store FILE (default: stdin) as an object
  get PATH                        write an object's bytes to stdout
  kv-put PATH NAME=VALUE...       replace an item's attributes; VALUE: 12, 1.5, true, text,
                                  '"quoted text"', [1,2,3], [1.5,2], b64:BASE64, t:RFC3339-TIME
  kv-get PATH [NAME...]           show an item's attributes
  kv-update PATH EXPR [--if COND] apply an update expression
  scan DIR [--filter F] [--attrs a,b]   items of a table matching a filter
  stream-create PATH SHARDS [RETENTION_SECS]
  stream-put PATH DATA [--key PARTITION_KEY]
  stream-get PATH SHARD [FROM_SEQ]
  status                          the daemon: sessions, workers, counters, your containers
  demo                            run a short tour of every kind of data
--socket and --key default to $ZEROHOP_SOCKET and $ZEROHOP_ACCESS_KEY; `zh COMMAND --help`
shows one command. Exit status: 0 ok, 2 usage, 3 not found, 4 permission denied,
5 exists/condition false/not empty, 6 daemon unavailable, 1 other errors.)";

int Fail(const absl::Status& s) {
    std::cerr << "zh: " << s.message() << "\n";
    switch (s.code()) {
        case absl::StatusCode::kInvalidArgument: return 2;
        case absl::StatusCode::kNotFound: return 3;
        case absl::StatusCode::kPermissionDenied: return 4;
        case absl::StatusCode::kAlreadyExists:
        case absl::StatusCode::kFailedPrecondition: return 5;
        case absl::StatusCode::kUnavailable:
        case absl::StatusCode::kDeadlineExceeded: return 6;
        default: return 1;
    }
}

absl::StatusOr<Path> ParsePath(const std::string& s) { return Path::Parse(s); }

void PrintAttributes(const AttributeMap& attrs) {
    std::vector<std::string> names;
    for (const auto& [n, v] : attrs) {
        names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
        std::cout << "  " << n << " = " << attrs.at(n).DebugString() << "\n";
    }
}

// `zh COMMAND --help`: the usage line of that command.
int CommandHelp(const std::string& cmd) {
    for (absl::string_view line : absl::StrSplit(kUsage, '\n')) {
        absl::string_view stripped = absl::StripLeadingAsciiWhitespace(line);
        std::string_view t(stripped.data(), stripped.size());
        if (t.substr(0, cmd.size()) == cmd && (t.size() == cmd.size() || t[cmd.size()] == ' ')) {
            std::cout << "usage: zh [--socket PATH] [--key KEY] [--json] " << t << "\n";
            return 0;
        }
    }
    std::cerr << "zh: unknown command " << cmd << "\n" << kUsage << "\n";
    return 2;
}

class Cli {
public:
    Cli(Client* c, bool json) : c_(c), json_(json) {}

    int Run(const std::vector<std::string>& a) {
        if (a.empty()) {
            std::cerr << kUsage << "\n";
            return 2;
        }
        const std::string& cmd = a[0];
        auto need = [&](size_t n) { return a.size() >= n + 1; };
        auto path = [&](size_t i) { return ParsePath(a[i]); };
#define ZH_PATH(var, i)            \
    auto var = path(i);            \
    if (!var.ok()) {               \
        return Fail(var.status()); \
    }
        if (cmd == "ls" && need(1)) {
            ZH_PATH(p, 1);
            std::string marker;
            while (true) {
                auto r = c_->List({.path = *p, .marker = marker});
                if (!r.ok()) {
                    return Fail(r.status());
                }
                for (const DirEntry& e : r->entries) {
                    if (json_) {
                        nlohmann::json j = {{"name", e.name},
                                            {"type", std::string(ObjectTypeName(e.info.type))},
                                            {"size", e.info.size}};
                        std::cout << DumpJson(j) << "\n";
                    } else {
                        std::printf("%-9s %10llu  %s\n", std::string(ObjectTypeName(e.info.type)).c_str(),
                                    static_cast<unsigned long long>(e.info.size), e.name.c_str());
                    }
                }
                if (!r->truncated) {
                    return 0;
                }
                marker = r->next_marker;
            }
        }
        if (cmd == "stat" && need(1)) {
            ZH_PATH(p, 1);
            auto item = c_->GetItem({.path = *p, .attributes = {"**"}});
            if (!item.ok()) {
                return Fail(item.status());
            }
            Print(item->attributes);
            return 0;
        }
        if (cmd == "mkdir" && need(1)) {
            ZH_PATH(p, 1);
            return Report(c_->Mkdir({.path = *p}).status());
        }
        if (cmd == "rmdir" && need(1)) {
            ZH_PATH(p, 1);
            return Report(c_->Rmdir(*p));
        }
        if (cmd == "rm" && need(1)) {
            ZH_PATH(p, 1);
            return Report(c_->Delete({.path = *p}));
        }
        if (cmd == "mv" && need(2)) {
            ZH_PATH(from, 1);
            ZH_PATH(to, 2);
            return Report(c_->Rename({.from = *from, .to = *to}));
        }
        if (cmd == "ln" && need(3) && a[1] == "-s") {
            ZH_PATH(p, 3);
            return Report(c_->Symlink({.path = *p, .target = a[2]}).status());
        }
        if (cmd == "put" && need(1)) {
            ZH_PATH(p, 1);
            FILE* in = a.size() > 2 ? std::fopen(a[2].c_str(), "rb") : stdin;
            if (in == nullptr) {
                return Fail(absl::NotFoundError(absl::StrCat("cannot open ", a[2])));
            }
            std::string data;
            char buf[1 << 16];
            size_t n;
            while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) {
                data.append(buf, n);
            }
            bool failed = std::ferror(in);
            if (in != stdin) {
                std::fclose(in);
            }
            if (failed) {
                return Fail(absl::DataLossError("read error on the input"));
            }
            auto r = c_->PutObject({.path = *p}, data);
            if (!r.ok()) {
                return Fail(r.status());
            }
            std::cerr << "stored " << r->size << " bytes\n";
            return 0;
        }
        if (cmd == "get" && need(1)) {
            ZH_PATH(p, 1);
            // In ranges of views: the bytes go from the daemon's buffer straight to stdout.
            GetObjectRequest req{.path = *p};
            for (;;) {
                auto view = c_->GetObjectView(req);
                if (!view.ok()) {
                    return Fail(view.status());
                }
                std::string_view bytes = view->data();
                if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size()) {
                    return Fail(absl::UnavailableError("write to stdout failed"));
                }
                if (bytes.empty() || req.offset + bytes.size() >= view->info().size) {
                    return 0;
                }
                req.offset += bytes.size();
            }
        }
        if (cmd == "kv-put" && need(1)) {
            ZH_PATH(p, 1);
            AttributeMap attrs;
            for (size_t i = 2; i < a.size(); ++i) {
                size_t eq = a[i].find('=');
                if (eq == std::string::npos) {
                    return Fail(absl::InvalidArgumentError(absl::StrCat("expected NAME=VALUE, got ", a[i])));
                }
                auto value = ParseCliValue(std::string_view(a[i]).substr(eq + 1));
                if (!value.ok()) {
                    return Fail(absl::InvalidArgumentError(absl::StrCat(a[i].substr(0, eq), ": ", value.status().message())));
                }
                attrs[a[i].substr(0, eq)] = std::move(*value);
            }
            return Report(c_->PutItem({.path = *p, .attributes = attrs}).status());
        }
        if (cmd == "kv-get" && need(1)) {
            ZH_PATH(p, 1);
            std::vector<std::string> names(a.begin() + 2, a.end());
            auto item = c_->GetItem({.path = *p, .attributes = names});
            if (!item.ok()) {
                return Fail(item.status());
            }
            Print(item->attributes);
            return 0;
        }
        if (cmd == "kv-update" && need(2)) {
            ZH_PATH(p, 1);
            std::string cond = a.size() > 4 && a[3] == "--if" ? a[4] : "";
            return Report(c_->UpdateItem({.path = *p, .update = a[2], .condition = cond}).status());
        }
        if (cmd == "scan" && need(1)) {
            ZH_PATH(p, 1);
            GetItemsRequest req{.path = *p};
            for (size_t i = 2; i + 1 < a.size(); i += 2) {
                if (a[i] == "--filter") {
                    req.filter = a[i + 1];
                } else if (a[i] == "--attrs") {
                    req.attributes = absl::StrSplit(a[i + 1], ',');
                }
            }
            while (true) {
                auto page = c_->GetItems(req);
                if (!page.ok()) {
                    return Fail(page.status());
                }
                for (const Item& it : page->items) {
                    if (json_) {
                        std::cout << DumpJson({{"name", it.name}, {"attributes", AttributesToJson(it.attributes)}})
                                  << "\n";
                    } else {
                        std::cout << it.name << "\n";
                        PrintAttributes(it.attributes);
                    }
                }
                if (page->done) {
                    return 0;
                }
                req.marker = page->next_marker;
            }
        }
        if (cmd == "stream-create" && need(2)) {
            ZH_PATH(p, 1);
            uint32_t shards = 0;
            int64_t retention = 24 * 3600;
            if (!absl::SimpleAtoi(a[2], &shards) || (a.size() > 3 && !absl::SimpleAtoi(a[3], &retention))) {
                return Fail(absl::InvalidArgumentError("SHARDS and RETENTION_SECS are numbers"));
            }
            return Report(c_->CreateStream({.path = *p, .shard_count = shards, .retention_secs = retention}).status());
        }
        if (cmd == "stream-put" && need(2)) {
            ZH_PATH(p, 1);
            RecordInput rec{.data = a[2]};
            if (a.size() > 4 && a[3] == "--key") {
                rec.partition_key = a[4];
            }
            auto r = c_->PutRecords({.path = *p, .records = {rec}});
            if (!r.ok()) {
                return Fail(r.status());
            }
            if (!(*r)[0].status.ok()) {
                return Fail((*r)[0].status);
            }
            std::cout << "shard " << (*r)[0].shard << " sequence " << (*r)[0].sequence << "\n";
            return 0;
        }
        if (cmd == "stream-get" && need(2)) {
            ZH_PATH(p, 1);
            StreamLocation loc;
            if (!absl::SimpleAtoi(a[2], &loc.shard) || (a.size() > 3 && !absl::SimpleAtoi(a[3], &loc.sequence))) {
                return Fail(absl::InvalidArgumentError("SHARD and FROM_SEQ are numbers"));
            }
            auto r = c_->GetRecords({.path = *p, .location = loc});
            if (!r.ok()) {
                return Fail(r.status());
            }
            for (const StreamRecord& rec : r->records) {
                if (json_) {
                    std::cout << DumpJson({{"shard", rec.shard},
                                           {"sequence", rec.sequence},
                                           {"data", rec.data},
                                           {"partition_key", rec.partition_key}})
                              << "\n";
                } else {
                    std::cout << rec.sequence << "\t" << rec.data << "\n";
                }
            }
            return 0;
        }
        if (cmd == "status") {
            auto st = c_->Status();
            if (!st.ok()) {
                return Fail(st.status());
            }
            auto info = c_->Info();
            if (!info.ok() && !absl::IsUnimplemented(info.status())) {
                return Fail(info.status());
            }
            // Where the metrics are: an address, off, or not said by an older daemon.
            std::string metrics = !info.ok()              ? "unknown (zerohopd too old to say)"
                                  : info->metrics.empty() ? "off"
                                                          : absl::StrCat("http://", info->metrics, "/metrics");
            if (json_) {
                std::cout << DumpJson({{"protocol", st->version},
                                       {"workers", st->workers},
                                       {"sessions_open", st->sessions_open},
                                       {"sessions_total", st->sessions_total},
                                       {"sessions_refused", st->sessions_refused},
                                       {"requests", st->requests},
                                       {"request_errors", st->request_errors},
                                       {"bad_descriptors", st->bad_descriptors},
                                       {"session", c_->session_id()},
                                       {"containers", st->containers},
                                       {"version", info.ok() ? info->version : ""},
                                       {"metrics", info.ok() ? info->metrics : ""}})
                          << "\n";
            } else {
                std::printf("zerohopd      %s (protocol %u)\nworkers       %u\n"
                            "sessions      %llu open, %llu total, %llu refused\n"
                            "requests      %llu (%llu errors, %llu malformed descriptors)\ncontainers    %s\n"
                            "metrics       %s\n",
                            info.ok() ? info->version.c_str() : "?", st->version, st->workers,
                            (unsigned long long)st->sessions_open, (unsigned long long)st->sessions_total,
                            (unsigned long long)st->sessions_refused, (unsigned long long)st->requests,
                            (unsigned long long)st->request_errors, (unsigned long long)st->bad_descriptors,
                            absl::StrJoin(st->containers, ", ").c_str(), metrics.c_str());
            }
            return 0;
        }
        if (cmd == "demo") {
            return Demo();
        }
        std::cerr << kUsage << "\n";
        return 2;
    }

private:
    int Report(const absl::Status& s) { return s.ok() ? 0 : Fail(s); }
    void Print(const AttributeMap& attrs) {
        if (json_) {
            std::cout << DumpJson(AttributesToJson(attrs)) << "\n";
        } else {
            PrintAttributes(attrs);
        }
    }

    int Demo() {
        std::vector<std::vector<std::string>> steps = {
            {"mkdir", "/demo/people"},
            {"kv-put", "/demo/people/alice", "age=40", "state=NY", "name=Alice"},
            {"kv-put", "/demo/people/bob", "age=29", "state=MA", "name=Bob"},
            {"kv-put", "/demo/people/carol", "age=51", "state=AZ", "name=Carol"},
            {"kv-update", "/demo/people/alice", "visits = if_not_exists(visits, 0) + 1"},
            {"scan", "/demo/people", "--filter", "age > 30 AND NOT (state IN ('AZ'))", "--attrs", "name,age,visits"},
            {"stream-create", "/demo/clicks", "2", "3600"},
            {"stream-put", "/demo/clicks", "click-1", "--key", "alice"},
            {"stream-put", "/demo/clicks", "click-2", "--key", "alice"},
            {"stream-get", "/demo/clicks", std::to_string(ShardForPartitionKey("alice", 2)), "1"},
            {"ls", "/demo"},
        };
        for (const auto& step : steps) {
            if (step[0] == "mkdir" || step[0] == "stream-create") {
                if (c_->Stat(*Path::Parse(step[1])).ok()) {
                    continue;  // a second run of the demo on the same store
                }
            }
            std::cout << "$ zh " << absl::StrJoin(step, " ") << "\n";
            int rc = Run(step);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }

    Client* c_;
    bool json_;
};

}  // namespace
}  // namespace zerohop

int main(int argc, char** argv) {
    // Debian builds abseil with the Mutex deadlock detector on: tens of ns per lock.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    zerohop::ClientOptions opts;
    bool json = false;
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        // --socket and --key are zh's before the command; after it, --key is the command's
        // (stream-put's partition key).
        if ((a == "--socket" || a == "--key") && args.empty() && i + 1 < argc) {
            (a == "--socket" ? opts.socket_path : opts.access_key) = argv[++i];
        } else if (a == "--json") {
            json = true;
        } else if (a == "--help" || a == "-h") {
            if (!args.empty()) {
                return zerohop::CommandHelp(args[0]);
            }
            std::cout << zerohop::kUsage << "\n";
            return 0;
        } else {
            args.push_back(a);
        }
    }
    if (args.empty()) {
        std::cerr << zerohop::kUsage << "\n";
        return 2;
    }
    auto client = zerohop::Client::Connect(opts);
    if (!client.ok()) {
        return zerohop::Fail(client.status());
    }
    return zerohop::Cli(client->get(), json).Run(args);
}
