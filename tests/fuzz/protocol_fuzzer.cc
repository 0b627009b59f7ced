// libFuzzer target: any bytes, decoded as any wire message, give an error or a message
// that re-encodes to bytes which decode again to the same encoding. Never a crash.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "wire/protocol.h"

namespace {

template <typename T>
void Check(std::string_view bytes) {
    auto msg = zerohop::protocol::Decode<T>(bytes);
    if (!msg.ok()) {
        return;
    }
    std::string again = zerohop::protocol::Encode(*msg);
    auto second = zerohop::protocol::Decode<T>(again);
    if (!second.ok() || zerohop::protocol::Encode(*second) != again) {
        __builtin_trap();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    using namespace zerohop;
    std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 24) {
        case 0: Check<protocol::Hello>(bytes); break;
        case 1: Check<protocol::Welcome>(bytes); break;
        case 2: Check<Path>(bytes); break;
        case 3: Check<ListRequest>(bytes); break;
        case 4: Check<ListResult>(bytes); break;
        case 5: Check<RenameRequest>(bytes); break;
        case 6: Check<SetMetadataRequest>(bytes); break;
        case 7: Check<GetObjectRequest>(bytes); break;
        case 8: Check<PutObjectRequest>(bytes); break;
        case 9: Check<WriteObjectRequest>(bytes); break;
        case 10: Check<GetItemRequest>(bytes); break;
        case 11: Check<Item>(bytes); break;
        case 12: Check<GetItemsRequest>(bytes); break;
        case 13: Check<GetItemsResult>(bytes); break;
        case 14: Check<std::vector<PutItemRequest>>(bytes); break;
        case 15: Check<UpdateItemRequest>(bytes); break;
        case 16: Check<CreateStreamRequest>(bytes); break;
        case 17: Check<PutRecordsRequest>(bytes); break;
        case 18: Check<std::vector<RecordResult>>(bytes); break;
        case 19: Check<SeekRequest>(bytes); break;
        case 20: Check<GetRecordsRequest>(bytes); break;
        case 21: Check<GetRecordsResult>(bytes); break;
        case 22: Check<ObjectInfo>(bytes); break;
        default: Check<std::vector<absl::Status>>(bytes); break;
    }
    return 0;
}
