// libFuzzer target: the expression parser and evaluator must never crash, hang or leak,
// whatever the input. The first byte picks condition or update; the rest is the text.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "expr/expression.h"

namespace {

zerohop::AttributeMap SampleItem() {
    using zerohop::Value;
    zerohop::AttributeMap m;
    m["a"] = Value::Int64(7);
    m["b"] = Value::Double(-1.5);
    m["s"] = Value::String("hello");
    m["blob"] = Value::Blob(std::string("\0\1", 2));
    m["flag"] = Value::Bool(true);
    m["t"] = Value::Time({100, 5});
    m["arr"] = Value::Int64Array({1, 2, 3});
    m["darr"] = Value::DoubleArray({0.5, 2.5});
    return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    static const zerohop::AttributeMap kItem = SampleItem();
    zerohop::ObjectInfo info;
    info.size = 42;
    std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    if (data[0] & 1) {
        auto cond = zerohop::expr::Condition::Parse(text);
        if (cond.ok()) {
            zerohop::expr::MapAttributes item(&kItem, "name", &info);
            (void)cond->Matches(item);
        }
    } else {
        auto update = zerohop::expr::Update::Parse(text);
        if (update.ok()) {
            zerohop::AttributeMap copy = kItem;
            (void)update->Apply(&copy, "name", &info);
        }
    }
    return 0;
}
