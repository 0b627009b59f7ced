// Items through libzerohop: connect, put an item, update it, read it back, scan a table.
//
//   export ZEROHOP_SOCKET=$PWD/var/zerohop.sock ZEROHOP_ACCESS_KEY=dev-key   # tools/run.sh
//   build/examples/items
//
// Build your own against the installed library: c++ -std=c++20 items.cc $(pkg-config --cflags --libs zerohop)

#include <iostream>

#include "zerohop/client.h"

int main() {
    auto client = zerohop::Client::Connect();  // ZEROHOP_SOCKET, ZEROHOP_ACCESS_KEY
    if (!client.ok()) {
        std::cerr << client.status().message() << "\n";
        return 1;
    }
    zerohop::Client& zh = **client;
    zerohop::Path table = *zerohop::Path::Parse("/demo/example-people");
    (void)zh.Mkdir({.path = table});  // AlreadyExists on a second run is fine

    zerohop::Path alice = *table.Child("alice");
    auto put = zh.PutItem({.path = alice,
                           .attributes = {{"age", zerohop::Value::Int64(40)},
                                          {"city", zerohop::Value::String("Tel Aviv")}}});
    if (!put.ok()) {
        std::cerr << put.status().message() << "\n";
        return 1;
    }
    // Atomic read-modify-write on the daemon: no lost updates under concurrency.
    (void)zh.UpdateItem({.path = alice, .update = "visits = if_not_exists(visits, 0) + 1"});

    auto item = zh.GetItem({.path = alice, .attributes = {"age", "visits", "__mtime_secs"}});
    if (item.ok()) {
        for (const auto& [name, value] : item->attributes) {
            std::cout << name << " = " << value.DebugString() << "\n";
        }
    }
    // A filtered scan, page by page.
    zerohop::GetItemsRequest scan{.path = table, .filter = "age >= 18", .attributes = {"age"}};
    for (;;) {
        auto page = zh.GetItems(scan);
        if (!page.ok()) {
            std::cerr << page.status().message() << "\n";
            return 1;
        }
        for (const auto& it : page->items) {
            std::cout << it.name << ": " << it.attributes.at("age").DebugString() << "\n";
        }
        if (page->done) {
            break;
        }
        scan.marker = page->next_marker;
    }
    // Asynchronous: submit, then let completions run from Poll.
    int pending = 3;
    for (int i = 0; i < 3; ++i) {
        zh.GetItemAsync({.path = alice}, [&pending](absl::StatusOr<zerohop::Item> r) {
            --pending;
            std::cout << "async get: " << (r.ok() ? "ok" : r.status().ToString()) << "\n";
        });
    }
    while (pending > 0) {
        zh.WaitAndPoll(absl::Milliseconds(100));
    }
    return 0;
}
