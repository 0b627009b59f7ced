// libFuzzer target: decoding stored records and attribute encodings from arbitrary bytes
// gives an error or a value, never a crash or an out-of-bounds read.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "embedded/internal/records.h"
#include "zerohop/path.h"
#include "zerohop/stream.h"
#include "zerohop/value.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    if (auto attrs = zerohop::DecodeAttributes(bytes); attrs.ok()) {
        std::string again;
        zerohop::EncodeAttributes(*attrs, &again);
        if (!zerohop::DecodeAttributes(again).ok()) {
            __builtin_trap();  // what decodes must re-encode and decode again
        }
    }
    zerohop::EncodedAttributes enc(bytes);
    if (enc.Validate().ok()) {
        (void)enc.Find("a");
    }
    if (auto e = zerohop::embedded::DecodeEntry(bytes); e.ok()) {
        (void)zerohop::embedded::EncodeEntry(*e);
    }
    (void)zerohop::embedded::DecodeShardState(bytes);
    int64_t arrival;
    std::string_view pk, ci, d;
    (void)zerohop::embedded::DecodeRecord(bytes, &arrival, &pk, &ci, &d);
    (void)zerohop::StreamLocation::Decode(bytes);
    (void)zerohop::Path::Parse(bytes);
    return 0;
}
