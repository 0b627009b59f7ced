// libFuzzer target: zerohop-cni's reading of its stdin (the network configuration, with
// prevResult, runtimeConfig and GC's valid attachments) must reject anything malformed with
// an error, never crash, hang or leak. The first byte picks the command.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) {
        return 0;
    }
    static const char* kCommands[] = {"ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"};
    const char* command = kCommands[data[0] % 6];
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    auto conf = zerohop::cni::ParseNetConf(text, command);
    if (!conf.ok()) {
        // Every rejection carries a CNI code a runtime understands.
        int code = zerohop::cni::CniCodeOf(conf.status());
        if (code <= 0) {
            __builtin_trap();
        }
    }
    zerohop::cni::CheckInterfaceName(text).IgnoreError();
    zerohop::cni::CheckContainerId(text).IgnoreError();
    return 0;
}
