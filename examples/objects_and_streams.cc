// Objects and streams through libzerohop: a put of any size, a zero-copy get, a stream.
//
//   export ZEROHOP_SOCKET=$PWD/var/zerohop.sock ZEROHOP_ACCESS_KEY=dev-key   # tools/run.sh
//   build/examples/objects_and_streams

#include <iostream>

#include "zerohop/client.h"

int main() {
    auto client = zerohop::Client::Connect();
    if (!client.ok()) {
        std::cerr << client.status().message() << "\n";
        return 1;
    }
    zerohop::Client& zh = **client;

    // A 100 MiB object made on the fly: it streams through the session's buffer region in
    // chunks and replaces the old object atomically once the last byte is in.
    zerohop::Path blob = *zerohop::Path::Parse("/demo/example-blob");
    uint64_t left = 100 << 20;
    auto put = zh.PutObjectFrom({.path = blob, .attributes = {{"kind", zerohop::Value::String("demo")}}},
                                [&left](char* buf, size_t cap) -> absl::StatusOr<size_t> {
                                    size_t n = std::min<uint64_t>(cap, left);
                                    std::fill(buf, buf + n, 'z');
                                    left -= n;
                                    return n;
                                });
    if (!put.ok()) {
        std::cerr << put.status().message() << "\n";
        return 1;
    }
    std::cout << "stored " << put->size << " bytes\n";

    // Zero copy: the bytes stay in the daemon's buffer region until the view goes away.
    {
        auto view = zh.GetObjectView({.path = blob, .offset = 0, .length = 4096});
        if (view.ok()) {
            std::cout << "first bytes: " << view->data().substr(0, 8) << " of " << view->info().size << "\n";
        }
    }

    // A stream of two shards; records with the same partition key stay in order on one shard.
    zerohop::Path clicks = *zerohop::Path::Parse("/demo/example-clicks");
    (void)zh.CreateStream({.path = clicks, .shard_count = 2, .retention_secs = 3600});
    auto put_records = zh.PutRecords({.path = clicks,
                                      .records = {{.data = "click-1", .partition_key = "alice"},
                                                  {.data = "click-2", .partition_key = "alice"}}});
    if (!put_records.ok()) {
        std::cerr << put_records.status().message() << "\n";
        return 1;
    }
    uint32_t shard = (*put_records)[0].shard;
    auto from = zh.Seek({.path = clicks, .shard = shard, .type = zerohop::SeekType::kEarliest});
    auto page = zh.GetRecords({.path = clicks, .location = *from, .limit = 100});
    if (page.ok()) {
        for (const auto& r : page->records) {
            std::cout << "shard " << r.shard << " #" << r.sequence << ": " << r.data << "\n";
        }
    }
    return 0;
}
