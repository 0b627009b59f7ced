// zerohop-cni: the CNI plugin binary. The runtime runs it with CNI_* in the environment and
// the network configuration on stdin; the result (or an error JSON) goes to stdout.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "cni_plugin.h"

int main() {
    std::string config;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(0, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;  // an unreadable stdin is an empty one: the parser says what is missing
        }
        config.append(buf, static_cast<size_t>(n));
        if (config.size() > (16 << 20)) {
            break;  // no network configuration is this large; the parser rejects the rest
        }
    }
    zerohop::cni::CniResponse res = zerohop::cni::RunCni(zerohop::cni::RequestFromEnvironment(std::move(config)));
    fputs(res.output.c_str(), stdout);
    fflush(stdout);
    return res.exit_code;
}
