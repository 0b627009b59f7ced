// zh-store: use an embedded store directly from the shell, without a daemon.
//
//   zh-store --dir /var/lib/zerohop ls /users
//   echo hello | zh-store --dir D put /users/greeting
//   zh-store --dir D kv-put /users/people/alice age=40 name=Alice
//   zh-store --dir D scan /users/people --filter "age > 30" --attrs name,age
//   zh-store --dir D demo
//
// Until the daemon and zh exist (issue 3) this is the way to look into a store.

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "embedded/embedded_backend.h"

namespace zerohop {
namespace {

constexpr char kUsage[] = R"(usage: zh-store --dir DIR [--container NAME]... COMMAND [ARGS]

Commands:
  ls PATH                         list a directory (or / for the containers)
  stat PATH                       show an entry's system attributes
  mkdir PATH | rmdir PATH | rm PATH | mv FROM TO | ln -s TARGET PATH
  put PATH [FILE]                 store FILE (default: stdin) as an object
  get PATH                        write an object's bytes to stdout
  kv-put PATH NAME=VALUE...       replace an item's attributes (VALUE: 12, 1.5, true, text)
  kv-get PATH [NAME...]           show an item's attributes
  kv-update PATH EXPR [--if COND] apply an update expression
  scan DIR [--filter F] [--attrs a,b]   items of a table matching a filter
  stream-create PATH SHARDS [RETENTION_SECS]
  stream-put PATH DATA [--key PARTITION_KEY]
  stream-get PATH SHARD [FROM_SEQ]
  demo                            run a short tour of every kind of data
Containers default to "demo"; exit status 1 on an error, 2 on bad usage.)";

int Fail(const absl::Status& s) {
    std::cerr << "zh-store: " << s << "\n";
    return 1;
}

absl::StatusOr<Path> ParsePath(const std::string& s) { return Path::Parse(s); }

Value ParseValue(const std::string& text) {
    int64_t i;
    double d;
    if (absl::SimpleAtoi(text, &i)) {
        return Value::Int64(i);
    }
    if (text.find_first_of(".eE") != std::string::npos && absl::SimpleAtod(text, &d)) {
        return Value::Double(d);
    }
    if (text == "true" || text == "false") {
        return Value::Bool(text == "true");
    }
    return Value::String(std::string(text));
}

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

class Cli {
public:
    explicit Cli(Backend* b) : b_(b) {}

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
                auto r = Await<ListResult>([&](auto d) { b_->List({.path = *p, .marker = marker}, std::move(d)); });
                if (!r.ok()) {
                    return Fail(r.status());
                }
                for (const DirEntry& e : r->entries) {
                    std::printf("%-9s %10llu  %s\n", std::string(ObjectTypeName(e.info.type)).c_str(),
                                static_cast<unsigned long long>(e.info.size), e.name.c_str());
                }
                if (!r->truncated) {
                    return 0;
                }
                marker = r->next_marker;
            }
        }
        if (cmd == "stat" && need(1)) {
            ZH_PATH(p, 1);
            auto item = Await<Item>([&](auto d) { b_->GetItem({.path = *p, .attributes = {"**"}}, std::move(d)); });
            if (item.ok()) {
                PrintAttributes(item->attributes);
                return 0;
            }
            auto info = Await<ObjectInfo>([&](auto d) { b_->Stat(*p, std::move(d)); });
            if (!info.ok()) {
                return Fail(info.status());
            }
            std::cout << "  type = " << ObjectTypeName(info->type) << "\n  size = " << info->size << "\n";
            return 0;
        }
        if (cmd == "mkdir" && need(1)) {
            ZH_PATH(p, 1);
            return Report(Await<ObjectInfo>([&](auto d) { b_->Mkdir({.path = *p}, std::move(d)); }).status());
        }
        if (cmd == "rmdir" && need(1)) {
            ZH_PATH(p, 1);
            return Report(AwaitStatus([&](auto d) { b_->Rmdir(*p, std::move(d)); }));
        }
        if (cmd == "rm" && need(1)) {
            ZH_PATH(p, 1);
            return Report(AwaitStatus([&](auto d) { b_->Delete({.path = *p}, std::move(d)); }));
        }
        if (cmd == "mv" && need(2)) {
            ZH_PATH(from, 1);
            ZH_PATH(to, 2);
            return Report(AwaitStatus([&](auto d) { b_->Rename({.from = *from, .to = *to}, std::move(d)); }));
        }
        if (cmd == "ln" && need(3) && a[1] == "-s") {
            ZH_PATH(p, 3);
            return Report(
                Await<ObjectInfo>([&](auto d) { b_->Symlink({.path = *p, .target = a[2]}, std::move(d)); }).status());
        }
        if (cmd == "put" && need(1)) {
            ZH_PATH(p, 1);
            FILE* in = a.size() > 2 ? std::fopen(a[2].c_str(), "rb") : stdin;
            if (in == nullptr) {
                return Fail(absl::NotFoundError(absl::StrCat("cannot open ", a[2])));
            }
            class FileSource : public DataSource {
            public:
                explicit FileSource(FILE* f) : f_(f) {}
                absl::StatusOr<size_t> Read(char* buf, size_t cap) override {
                    size_t n = std::fread(buf, 1, cap, f_);
                    if (n == 0 && std::ferror(f_)) {
                        return absl::DataLossError("read error on input");
                    }
                    return n;
                }

            private:
                FILE* f_;
            } source(in);
            auto r = Await<ObjectInfo>([&](auto d) { b_->PutObject({.path = *p}, &source, std::move(d)); });
            if (in != stdin) {
                std::fclose(in);
            }
            if (!r.ok()) {
                return Fail(r.status());
            }
            std::cerr << "stored " << r->size << " bytes\n";
            return 0;
        }
        if (cmd == "get" && need(1)) {
            ZH_PATH(p, 1);
            class StdoutSink : public DataSink {
            public:
                absl::Status Write(std::string_view c) override {
                    return std::fwrite(c.data(), 1, c.size(), stdout) == c.size()
                               ? absl::OkStatus()
                               : absl::UnavailableError("write to stdout failed");
                }
            } sink;
            return Report(
                Await<GetObjectResult>([&](auto d) { b_->GetObject({.path = *p}, &sink, std::move(d)); })
                    .status());
        }
        if (cmd == "kv-put" && need(1)) {
            ZH_PATH(p, 1);
            AttributeMap attrs;
            for (size_t i = 2; i < a.size(); ++i) {
                size_t eq = a[i].find('=');
                if (eq == std::string::npos) {
                    return Fail(absl::InvalidArgumentError(absl::StrCat("expected NAME=VALUE, got ", a[i])));
                }
                attrs[a[i].substr(0, eq)] = ParseValue(a[i].substr(eq + 1));
            }
            return Report(
                Await<ObjectInfo>([&](auto d) { b_->PutItem({.path = *p, .attributes = attrs}, std::move(d)); })
                    .status());
        }
        if (cmd == "kv-get" && need(1)) {
            ZH_PATH(p, 1);
            std::vector<std::string> names(a.begin() + 2, a.end());
            auto item = Await<Item>([&](auto d) { b_->GetItem({.path = *p, .attributes = names}, std::move(d)); });
            if (!item.ok()) {
                return Fail(item.status());
            }
            PrintAttributes(item->attributes);
            return 0;
        }
        if (cmd == "kv-update" && need(2)) {
            ZH_PATH(p, 1);
            std::string cond = a.size() > 4 && a[3] == "--if" ? a[4] : "";
            return Report(Await<ObjectInfo>([&](auto d) {
                              b_->UpdateItem({.path = *p, .update = a[2], .condition = cond}, std::move(d));
                          }).status());
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
                auto page = Await<GetItemsResult>([&](auto d) { b_->GetItems(req, std::move(d)); });
                if (!page.ok()) {
                    return Fail(page.status());
                }
                for (const Item& it : page->items) {
                    std::cout << it.name << "\n";
                    PrintAttributes(it.attributes);
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
            return Report(Await<ObjectInfo>([&](auto d) {
                              b_->CreateStream({.path = *p, .shard_count = shards, .retention_secs = retention},
                                               std::move(d));
                          }).status());
        }
        if (cmd == "stream-put" && need(2)) {
            ZH_PATH(p, 1);
            RecordInput rec{.data = a[2]};
            if (a.size() > 4 && a[3] == "--key") {
                rec.partition_key = a[4];
            }
            auto r = Await<std::vector<RecordResult>>(
                [&](auto d) { b_->PutRecords({.path = *p, .records = {rec}}, std::move(d)); });
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
            auto r = Await<GetRecordsResult>([&](auto d) { b_->GetRecords({.path = *p, .location = loc}, std::move(d)); });
            if (!r.ok()) {
                return Fail(r.status());
            }
            for (const StreamRecord& rec : r->records) {
                std::cout << rec.sequence << "\t" << rec.data << "\n";
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
                auto exists = Await<ObjectInfo>([&](auto d) { b_->Stat(*Path::Parse(step[1]), std::move(d)); });
                if (exists.ok()) {
                    continue;  // a second run of the demo on the same store
                }
            }
            std::cout << "$ zh-store " << absl::StrJoin(step, " ") << "\n";
            int rc = Run(step);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }

    Backend* b_;
};

}  // namespace
}  // namespace zerohop

int main(int argc, char** argv) {
    zerohop::EmbeddedOptions opts;
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if ((a == "--dir" || a == "--container") && i + 1 < argc) {
            (a == "--dir" ? opts.dir : opts.containers.emplace_back()) = argv[++i];
        } else if (a == "--help" || a == "-h") {
            std::cout << zerohop::kUsage << "\n";
            return 0;
        } else {
            args.push_back(a);
        }
    }
    if (opts.dir.empty()) {
        std::cerr << "zh-store: --dir is required\n" << zerohop::kUsage << "\n";
        return 2;
    }
    if (opts.containers.empty()) {
        opts.containers = {"demo"};
    }
    opts.maintenance_interval = absl::ZeroDuration();
    auto backend = zerohop::EmbeddedBackend::Open(opts);
    if (!backend.ok()) {
        return zerohop::Fail(backend.status());
    }
    return zerohop::Cli(backend->get()).Run(args);
}
