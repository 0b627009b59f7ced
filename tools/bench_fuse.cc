// zh-bench --suite fuse: zerohop-fuse beside tmpfs and libfuse's passthrough_ll, in one run.
//
// Needs root, /dev/fuse, fio and a C compiler (passthrough_ll is built from the example
// source Debian ships in libfuse3-dev). All three serve files from one tmpfs: tmpfs
// itself, passthrough_ll over a directory of it, and zerohop-fuse over a zerohopd whose
// embedded store lives in it. fio drives the data workloads; the metadata one is a loop
// of creat/stat/unlink here.

#include "bench_fuse.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench_procs.h"
#include "fio_json.h"

namespace zerohop {

namespace {

std::string Run(const std::string& cmd, int* status = nullptr) {
    FILE* f = popen((cmd + " 2>&1").c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while (f != nullptr && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        out.append(buf, n);
    }
    int st = f != nullptr ? pclose(f) : -1;
    if (status != nullptr) {
        *status = st;
    }
    return out;
}

bool MountedAt(const std::string& dir, const std::string& type) {
    std::ifstream m("/proc/self/mounts");
    std::string line;
    while (std::getline(m, line)) {
        if (line.find(" " + dir + " " + type) != std::string::npos) {
            return true;
        }
    }
    return false;
}

bool WaitMounted(const std::string& dir, const std::string& type) {
    for (int i = 0; i < 500; ++i) {
        if (MountedAt(dir, type)) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

std::string FindZerohopFuse() {
    std::string d = FindZerohopd();
    std::string candidate = d.substr(0, d.rfind('/')) + "/../fuse/zerohop-fuse";
    return access(candidate.c_str(), X_OK) == 0 ? candidate : "zerohop-fuse";
}

// creat + close, stat, unlink of `n` files in `dir`: three Results.
std::vector<Result> Metadata(const std::string& label, const std::string& dir, int n) {
    std::filesystem::create_directories(dir);
    std::vector<Result> out;
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) {
        names.push_back(absl::StrCat(dir, "/f", i));
    }
    auto phase = [&](const std::string& what, auto op) {
        std::vector<double> samples;
        auto start = Clock::now();
        for (const auto& p : names) {
            auto t0 = Clock::now();
            op(p);
            samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        }
        double secs = std::chrono::duration<double>(Clock::now() - start).count();
        out.push_back(Summarize(label + "_" + what, &samples, secs, 0));
    };
    phase("create", [](const std::string& p) {
        int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_EXCL, 0644);
        if (fd < 0) {
            std::perror(p.c_str());
            std::exit(1);
        }
        ::close(fd);
    });
    phase("stat", [](const std::string& p) {
        struct stat st;
        if (::stat(p.c_str(), &st) != 0) {
            std::perror(p.c_str());
            std::exit(1);
        }
    });
    phase("unlink", [](const std::string& p) {
        if (::unlink(p.c_str()) != 0) {
            std::perror(p.c_str());
            std::exit(1);
        }
    });
    return out;
}

}  // namespace

std::vector<Comparison> FuseSuite(std::chrono::milliseconds d, const std::string& dir) {
    std::vector<Comparison> out;
    int status = 0;
    if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
        std::cerr << "zh-bench: the fuse suite needs root and /dev/fuse; skipped\n";
        return out;
    }
    Run("fio --version", &status);
    if (status != 0) {
        std::cerr << "zh-bench: the fuse suite needs fio (tools/install-deps.sh installs it); skipped\n";
        return out;
    }
    // One tmpfs under everything.
    const std::string tmpfs = dir + "/tmpfs";
    std::filesystem::create_directories(tmpfs);
    Check(::mount("tmpfs", tmpfs.c_str(), "tmpfs", 0, "size=4g") == 0
              ? absl::OkStatus()
              : absl::InternalError(absl::StrCat("mount tmpfs: ", strerror(errno))),
          "fuse suite");
    struct Unmount {
        std::string at;
        ~Unmount() { ::umount2(at.c_str(), MNT_DETACH); }
    } unmount_tmpfs{tmpfs};

    // passthrough_ll, built from the example source, over tmpfs/pt.
    const std::string pt_bin = dir + "/passthrough_ll";
    std::string build = Run("cc -O2 -o '" + pt_bin +
                                "' /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c $(pkg-config --cflags --libs fuse3)",
                            &status);
    Check(status == 0 ? absl::OkStatus() : absl::InternalError(build), "build passthrough_ll");
    const std::string pt_src = tmpfs + "/pt", pt_mnt = dir + "/pt-mnt";
    std::filesystem::create_directories(pt_src);
    std::filesystem::create_directories(pt_mnt);
    auto passthrough = std::make_unique<Child>(std::vector<std::string>{pt_bin, "-f", "-o", "source=" + pt_src, pt_mnt});
    Check(WaitMounted(pt_mnt, "fuse") ? absl::OkStatus() : absl::InternalError("passthrough_ll did not mount"),
          "passthrough_ll");
    Unmount unmount_pt{pt_mnt};

    // zerohopd with its store in tmpfs, and zerohop-fuse showing container "bench".
    const std::string zh_dir = tmpfs + "/zh";
    std::filesystem::create_directories(zh_dir);
    BenchDaemon daemon = StartBenchDaemon(zh_dir, 1);
    (void)ConnectWaiting(daemon.options);
    const std::string zh_mnt = dir + "/zh-mnt";
    std::filesystem::create_directories(zh_mnt);
    // zerohop-fuse's defaults, unless ZH_BENCH_FUSE_SPIN_US says how long it may spin and
    // ZH_BENCH_FUSE_PASSTHROUGH=0 turns kernel passthrough off.
    std::vector<std::string> fuse_args = {FindZerohopFuse(), "--socket", daemon.options.socket_path, "--key", "bench",
                                          "--root", "/bench"};
    if (const char* spin = getenv("ZH_BENCH_FUSE_SPIN_US")) {
        fuse_args.insert(fuse_args.end(), {"--spin-us", spin});
    }
    if (const char* pt = getenv("ZH_BENCH_FUSE_PASSTHROUGH"); pt != nullptr && std::string(pt) == "0") {
        fuse_args.push_back("--no-passthrough");
    }
    fuse_args.push_back(zh_mnt);
    auto fuse = std::make_unique<Child>(fuse_args);
    Check(WaitMounted(zh_mnt, "fuse.zerohop") ? absl::OkStatus() : absl::InternalError("zerohop-fuse did not mount"),
          "zerohop-fuse");
    Unmount unmount_zh{zh_mnt};

    struct Target {
        std::string name, dir;
    };
    const std::vector<Target> targets = {{"zerohop", zh_mnt}, {"passthrough_ll", pt_mnt}, {"tmpfs", tmpfs + "/plain"}};
    std::filesystem::create_directories(tmpfs + "/plain");
    int secs = std::max<int>(1, static_cast<int>(d.count() / 1000));

    struct Workload {
        std::string name, args, side;
        double bytes;
    };
    const std::vector<Workload> workloads = {
        {"randread_4k_direct_qd1", "--rw=randread --bs=4k --direct=1 --ioengine=psync --iodepth=1", "read", 4096},
        {"randread_4k_direct_qd16", "--rw=randread --bs=4k --direct=1 --ioengine=libaio --iodepth=16", "read", 4096},
        {"read_1m_direct", "--rw=read --bs=1m --direct=1 --ioengine=psync", "read", 1 << 20},
        {"write_1m_direct", "--rw=write --bs=1m --direct=1 --ioengine=psync", "write", 1 << 20},
        // fio drops a file's cached pages before it starts unless told not to.
        {"reread_1g_buffered", "--rw=read --bs=1m --direct=0 --ioengine=psync --invalidate=0", "read", 1 << 20},
    };
    for (const Workload& w : workloads) {
        std::vector<Result> results;
        for (const Target& t : targets) {
            std::string size = w.name == "reread_1g_buffered" ? "1g" : "256m";
            std::string file = t.dir + "/fio." + w.name;
            // Lay the file out (and, for the re-read, read it once into the page cache).
            Run(absl::StrFormat("fio --name=prep --filename='%s' --size=%s --rw=write --bs=1m --ioengine=psync "
                                "--output-format=terse >/dev/null && cat '%s' >/dev/null",
                                file, size, file));
            std::string json = Run(absl::StrFormat("fio --name=%s --filename='%s' --size=%s %s --runtime=%d "
                                                   "--time_based --output-format=json",
                                                   w.name, file, size, w.args, secs));
            auto result = FioJobResult(absl::StrCat("fuse_", w.name, "_", t.name), json, w.side, w.bytes);
            Check(result.status(), "fio");
            results.push_back(std::move(*result));
            std::filesystem::remove(file);
        }
        out.push_back({results[0], results[1], "passthrough_ll over tmpfs, same fio job"});
        out.push_back({results[0], results[2], "tmpfs, same fio job"});
        out.back().ours.name += "_vs_tmpfs";
    }
    // Metadata: creates, stats, unlinks.
    std::vector<std::vector<Result>> meta;
    for (const Target& t : targets) {
        meta.push_back(Metadata("fuse_meta_" + t.name, t.dir + "/meta", 2000));
    }
    for (size_t i = 0; i < meta[0].size(); ++i) {
        out.push_back({meta[0][i], meta[1][i], "passthrough_ll over tmpfs, same loop"});
    }
    fuse.reset();
    passthrough.reset();
    return out;
}

}  // namespace zerohop
