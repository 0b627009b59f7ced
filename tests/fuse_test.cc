// zerohop-fuse on a real mount: POSIX behaviour with its error cases, xattrs against the C++
// API, and real programs (cp, diff, tar, rsync, git, sqlite3, fio) run on it.
//
// Needs root and /dev/fuse; skips without them, except in CI (CI=true), where it fails.

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <algorithm>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_format.h"
#include "daemon_fixture.h"
#include "zerohop/client.h"

namespace zerohop {
namespace {

Path P(std::string_view s) { return *Path::Parse(s); }

class FuseTest : public ::testing::Test {
protected:
    void SetUp() override {
        bool ci = getenv("CI") != nullptr && std::string(getenv("CI")) == "true";
        if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
            if (ci) {
                FAIL() << "FUSE tests need root and /dev/fuse, and CI must run them";
            }
            GTEST_SKIP() << "needs root and /dev/fuse";
        }
        char tmpl[] = "/tmp/zh-fuse-XXXXXX";
        dir_ = mkdtemp(tmpl);
        mnt_ = dir_ + "/mnt";
        std::filesystem::create_directories(mnt_);
        daemon_ = std::make_unique<testing::Daemon>(dir_);
        daemon_->Start();
        auto c = daemon_->Connect("rw-key");
        ASSERT_TRUE(c.ok()) << c.status();
        client_ = std::move(*c);
        StartFuse();
        root_ = mnt_ + "/demo";
    }

    void TearDown() override {
        StopFuse();
        client_.reset();
        daemon_.reset();
        if (!dir_.empty()) {
            std::filesystem::remove_all(dir_);
        }
    }

    // Starts zerohop-fuse; it mounts, or takes over the mount its holder keeps.
    void SpawnFuse() {
        const char* bin = getenv("ZEROHOP_FUSE");
        ASSERT_NE(bin, nullptr) << "ZEROHOP_FUSE must name the zerohop-fuse binary";
        fuse_pid_ = fork();
        ASSERT_GE(fuse_pid_, 0);
        if (fuse_pid_ == 0) {
            // A server that dies and is not replaced fails its callers after 5 s, not never.
            std::vector<std::string> args = {"zerohop-fuse", "--socket", daemon_->socket(), "--key", "rw-key",
                                              "--attr-timeout", "0.2", "--entry-timeout", "0.2", "--takeover-timeout", "5"};
            args.insert(args.end(), extra_args_.begin(), extra_args_.end());
            args.push_back(mnt_);
            if (!fault_.empty()) {
                setenv("ZEROHOP_FUSE_FAULT", fault_.c_str(), 1);
            }
            std::vector<char*> argv;
            for (std::string& a : args) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            execv(bin, argv.data());
            _exit(127);
        }
    }

    void StartFuse() {
        SpawnFuse();
        for (int i = 0; i < 500; ++i) {
            if (Mounted()) {
                // Answered only once the server is serving (its holder up, its loop running):
                // a test that stops it right away then stops a server, not a start-up.
                struct stat st;
                EXPECT_EQ(stat(mnt_.c_str(), &st), 0) << strerror(errno);
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        FAIL() << "zerohop-fuse did not mount " << mnt_;
    }

    void StopFuse() {
        if (fuse_pid_ > 0) {
            ::umount2(mnt_.c_str(), MNT_DETACH);
            kill(fuse_pid_, SIGTERM);
            int status = 0;
            waitpid(fuse_pid_, &status, 0);
            fuse_pid_ = -1;
            // A clean stop: exit 0, so no sanitizer report (those exit non-zero).
            EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "zerohop-fuse ended with status " << status;
        }
    }

    bool Mounted() const {
        std::ifstream m("/proc/self/mounts");
        std::string line;
        while (std::getline(m, line)) {
            if (absl::StrContains(line, " " + mnt_ + " fuse.zerohop ")) {
                return true;
            }
        }
        return false;
    }

    std::string F(const std::string& rel) const { return root_ + "/" + rel; }

    // Runs a shell command in `cwd`; its exit status and output.
    int Sh(const std::string& cmd, std::string* out = nullptr, const std::string& cwd = "") {
        int code = -1;
        std::string text = testing::RunShell("cd '" + (cwd.empty() ? root_ : cwd) + "' && (" + cmd + ")", &code);
        if (out != nullptr) {
            *out = text;
        }
        return code;
    }

    // Runs a reader (comparing a 256 KiB file) and a writer (appending a numbered line per
    // turn) on the mount for 3 s while `disrupt` runs; checks that neither saw an error and
    // that every line is there once and in order.
    void LoopThrough(const std::function<void()>& disrupt, int seconds = 3) {
        std::string expected(256 << 10, '\0');
        for (size_t i = 0; i < expected.size(); ++i) {
            expected[i] = static_cast<char>('a' + i % 23);
        }
        { std::ofstream(F("r"), std::ios::binary) << expected; }
        { std::ofstream(dir_ + "/expected", std::ios::binary) << expected; }
        std::string out;
        int code = -1;
        std::thread loops([&] {
            out = testing::RunShell(
                "cd '" + root_ + "' && end=$(($(date +%s) + " + std::to_string(seconds) + ")); i=0; "
                "while [ $(date +%s) -lt $end ]; do "
                "  cmp -s r '" + dir_ + "/expected' || { echo READ-ERROR $i; exit 1; }; "
                "  echo $i >> w || { echo WRITE-ERROR $i; exit 1; }; i=$((i + 1)); "
                "done; echo DONE $i",
                &code);
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(700));
        disrupt();
        loops.join();
        EXPECT_EQ(code, 0) << out;
        ASSERT_TRUE(absl::StartsWith(out, "DONE ")) << out;
        int n = 0;
        ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(out.substr(5)), &n)) << out;
        EXPECT_GT(n, 10) << "the loops made too little progress to test anything";
        std::string want;
        for (int i = 0; i < n; ++i) {
            want += std::to_string(i) + "\n";
        }
        EXPECT_EQ(ReadAll(F("w")), want) << "a line was lost or doubled";
        EXPECT_EQ(ReadAll(F("r")), expected);
    }

    // A shell loop on the mount for `seconds`: it makes a directory, fills a file in it, moves
    // both, removes them, and creates x<i> with `set -C` (a create applied twice fails it).
    // Finished by CheckNamesLoop; its output and exit code land in *out and *code.
    std::thread StartNamesLoop(int seconds, std::string* out, int* code) {
        return std::thread([this, seconds, out, code] {
            *out = testing::RunShell(
                "cd '" + root_ + "' && end=$(($(date +%s) + " + std::to_string(seconds) + ")); i=0; "
                "while [ $(date +%s) -lt $end ]; do "
                "  mkdir d$i && echo $i > d$i/f && mv d$i/f d$i/g && mv d$i e$i && rm e$i/g && rmdir e$i && "
                "  set -C && echo $i > x$i && set +C || { echo ERROR $i; exit 1; }; i=$((i + 1)); "
                "done; echo DONE $i",
                code);
        });
    }

    // The names loop saw no error and made progress, and what it leaves is x0 .. x(n-1),
    // each with its number, and nothing of its own else (besides `others`). Returns n.
    int CheckNamesLoop(std::thread& loop, const std::string& out, const int& code,
                       const std::set<std::string>& others = {}) {
        loop.join();
        EXPECT_EQ(code, 0) << out;
        EXPECT_TRUE(absl::StartsWith(out, "DONE ")) << out;
        int n = 0;
        EXPECT_TRUE(out.size() > 5 && absl::SimpleAtoi(absl::StripAsciiWhitespace(out.substr(5)), &n)) << out;
        EXPECT_GT(n, 10) << "the loop made too little progress to test anything";
        std::set<std::string> names;
        for (const auto& e : std::filesystem::directory_iterator(root_)) {
            names.insert(e.path().filename().string());
        }
        std::set<std::string> want = others;
        for (int i = 0; i < n; ++i) {
            want.insert("x" + std::to_string(i));
            EXPECT_EQ(ReadAll(F("x" + std::to_string(i))), std::to_string(i) + "\n");
        }
        EXPECT_EQ(names, want);
        return n;
    }

    // How many requests of `op` zerohopd has served (its metrics).
    uint64_t Served(const std::string& op) const {
        std::string want = absl::StrCat("zerohop_requests_total{op=\"", op, "\",backend=\"embedded\"} ");
        std::string m = daemon_->Metrics();
        size_t at = m.find(want);
        uint64_t n = 0;
        if (at != std::string::npos) {
            size_t end = m.find('\n', at);
            (void)absl::SimpleAtoi(m.substr(at + want.size(), end - at - want.size()), &n);
        }
        return n;
    }

    // An object of `size` bytes, each 4 KiB block starting with its number.
    static std::string Blocks(size_t size, char fill) {
        std::string s(size, fill);
        for (size_t b = 0; b * 4096 < size; ++b) {
            std::string tag = absl::StrFormat("%08d", b);
            s.replace(b * 4096, std::min(tag.size(), size - b * 4096), tag.substr(0, size - b * 4096));
        }
        return s;
    }

    static std::string PRead(int fd, size_t n, off_t off) {
        std::string buf(n, '\0');
        ssize_t got = pread(fd, buf.data(), n, off);
        buf.resize(got < 0 ? 0 : static_cast<size_t>(got));
        return buf;
    }

    static std::string ReadAll(const std::string& path) {
        std::ifstream f(path, std::ios::binary);
        return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    }

    std::string dir_, mnt_, root_;
    std::vector<std::string> extra_args_;  // more zerohop-fuse options, for SpawnFuse
    std::string fault_;                    // ZEROHOP_FUSE_FAULT for SpawnFuse
    std::unique_ptr<testing::Daemon> daemon_;
    std::unique_ptr<Client> client_;
    pid_t fuse_pid_ = -1;
};

#define EXPECT_ERRNO(call, err)                                                       \
    do {                                                                              \
        errno = 0;                                                                    \
        EXPECT_EQ((call), -1) << #call;                                               \
        EXPECT_EQ(errno, (err)) << #call << ": " << strerror(errno) << " instead of " \
                                << strerror(err);                                     \
    } while (0)

TEST_F(FuseTest, TheMountShowsTheContainersOfTheKey) {
    EXPECT_TRUE(Mounted());
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(mnt_)) {
        names.insert(e.path().filename());
    }
    EXPECT_EQ(names, std::set<std::string>{"demo"}) << "the key grants demo only";
    struct stat st;
    ASSERT_EQ(stat(root_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    struct statvfs vfs;
    ASSERT_EQ(statvfs(root_.c_str(), &vfs), 0);
    EXPECT_EQ(vfs.f_namemax, 255u);
}

TEST_F(FuseTest, FilesReadWriteAtOffsetsAppendAndTruncate) {
    int fd = open(F("f").c_str(), O_CREAT | O_RDWR | O_EXCL, 0640);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(pwrite(fd, "hello world", 11, 0), 11);
    ASSERT_EQ(pwrite(fd, "W", 1, 6), 1);
    char buf[64] = {};
    ASSERT_EQ(pread(fd, buf, sizeof buf, 0), 11);
    EXPECT_EQ(std::string(buf, 11), "hello World");
    ASSERT_EQ(pwrite(fd, "!", 1, 20), 1);  // past the end: a hole of zeros
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 21);
    EXPECT_EQ(st.st_mode & 07777, 0640u & ~0u);
    ASSERT_EQ(ftruncate(fd, 5), 0);
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 5);
    close(fd);
    EXPECT_EQ(ReadAll(F("f")), "hello");

    fd = open(F("f").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "+1", 2), 2);
    ASSERT_EQ(write(fd, "+2", 2), 2);
    close(fd);
    EXPECT_EQ(ReadAll(F("f")), "hello+1+2");
    fd = open(F("f").c_str(), O_WRONLY | O_TRUNC);
    ASSERT_GE(fd, 0);
    close(fd);
    EXPECT_EQ(ReadAll(F("f")), "");
    EXPECT_ERRNO(open(F("f").c_str(), O_CREAT | O_EXCL | O_RDWR, 0644), EEXIST);
    EXPECT_ERRNO(open(F("missing").c_str(), O_RDONLY), ENOENT);
    EXPECT_ERRNO(open(F("missing/x").c_str(), O_CREAT | O_RDWR, 0644), ENOENT);

    // A large file in 1 MiB writes, read back whole.
    std::string big(5 << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i) {
        big[i] = static_cast<char>(i * 13 >> 4);
    }
    { std::ofstream(F("big"), std::ios::binary).write(big.data(), static_cast<std::streamsize>(big.size())); }
    EXPECT_TRUE(ReadAll(F("big")) == big);
}

TEST_F(FuseTest, MmapReadsAndSharedWritesReachTheBackend) {
    std::string data(3 * 4096 + 100, '\0');
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<char>('A' + i % 26);
    }
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/mapped")}, data).ok());
    int fd = open(F("mapped").c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << strerror(errno);
    void* m = mmap(nullptr, data.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(m, MAP_FAILED) << strerror(errno);
    char* p = static_cast<char*>(m);
    EXPECT_EQ(std::string(p, data.size()), data) << "mmap read";
    // Stores into the mapping, on two pages; msync writes them back.
    memcpy(p + 10, "mapped!", 7);
    memcpy(p + 2 * 4096 + 1, "second page", 11);
    ASSERT_EQ(msync(m, data.size(), MS_SYNC), 0) << strerror(errno);
    data.replace(10, 7, "mapped!");
    data.replace(2 * 4096 + 1, 11, "second page");
    auto got = client_->GetObject({.path = P("/demo/mapped")});
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, data) << "the API does not see the stores after msync";
    // The size never changes through a mapping; the bytes past the end stay as they were.
    auto info = client_->Stat(P("/demo/mapped"));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->size, data.size());
    memcpy(p + 20, "again", 5);
    munmap(m, data.size());
    close(fd);  // dirty pages go back by close at the latest
    data.replace(20, 5, "again");
    got = client_->GetObject({.path = P("/demo/mapped")});
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(*got, data);
}

TEST_F(FuseTest, LocksAreHeldAndFallocateExtends) {
    // flock and POSIX record locks are the kernel's, across the processes of this node.
    { std::ofstream(F("lk")) << "x"; }
    int fd = open(F("lk").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(flock(fd, LOCK_EX), 0);
    std::string out;
    EXPECT_EQ(Sh("flock -n lk true", &out), 1) << "a second flock got the lock: " << out;
    ASSERT_EQ(flock(fd, LOCK_UN), 0);
    EXPECT_EQ(Sh("flock -n lk true", &out), 0) << out;
    struct flock fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    ASSERT_EQ(fcntl(fd, F_SETLK, &fl), 0);
    EXPECT_EQ(Sh("python3 -c \"import fcntl; f = open('lk', 'r+'); fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\"",
                 &out),
              1)
        << "a second POSIX lock got through: " << out;
    close(fd);
    // fallocate: mode 0 extends with zeros, KEEP_SIZE changes nothing, holes are refused.
    fd = open(F("fa").c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "abc", 3), 3);
    ASSERT_EQ(fallocate(fd, 0, 0, 1 << 20), 0) << strerror(errno);
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 1 << 20);
    ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 << 20), 0);
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 1 << 20);
    EXPECT_ERRNO(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), EOPNOTSUPP);
    close(fd);
    std::string bytes = ReadAll(F("fa"));
    EXPECT_EQ(bytes.size(), 1u << 20);
    EXPECT_EQ(bytes.substr(0, 4), std::string("abc\0", 4));
}

TEST_F(FuseTest, DirectoriesAndTheirErrors) {
    ASSERT_EQ(mkdir(F("d").c_str(), 0750), 0);
    struct stat st;
    ASSERT_EQ(stat(F("d").c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_ERRNO(mkdir(F("d").c_str(), 0755), EEXIST);
    EXPECT_ERRNO(mkdir(F("none/d").c_str(), 0755), ENOENT);
    { std::ofstream(F("d/file")) << "x"; }
    EXPECT_ERRNO(rmdir(F("d").c_str()), ENOTEMPTY);
    EXPECT_ERRNO(rmdir(F("d/file").c_str()), ENOTDIR);
    EXPECT_ERRNO(unlink(F("d").c_str()), EISDIR);
    EXPECT_ERRNO(mkdir(F("d/file/sub").c_str(), 0755), ENOTDIR);
    EXPECT_ERRNO(mkdir(F(std::string(256, 'n')).c_str(), 0755), ENAMETOOLONG);
    ASSERT_EQ(unlink(F("d/file").c_str()), 0);
    EXPECT_ERRNO(unlink(F("d/file").c_str()), ENOENT);
    ASSERT_EQ(rmdir(F("d").c_str()), 0);
    EXPECT_ERRNO(stat(F("d").c_str(), &st), ENOENT);
    EXPECT_ERRNO(link(F("x").c_str(), F("y").c_str()), ENOENT);
    { std::ofstream(F("x")) << "x"; }
    EXPECT_ERRNO(link(F("x").c_str(), F("y").c_str()), EPERM) ;  // no hard links
}

// A directory's link count is 2 (its name and ".") plus one ".." per subdirectory, as on
// ext4: kept by mkdir, rmdir and renames in and out, seen at once (the kernel drops a
// directory's cached attributes when its entries change), and the same through a listing.
TEST_F(FuseTest, DirectoryLinkCountsAreTwoPlusTheirSubdirectories) {
    auto nlink = [&](const std::string& rel) -> nlink_t {
        struct stat st = {};
        EXPECT_EQ(stat(F(rel).c_str(), &st), 0) << rel << ": " << strerror(errno);
        return st.st_nlink;
    };
    ASSERT_EQ(mkdir(F("top").c_str(), 0755), 0);
    EXPECT_EQ(nlink("top"), 2u);
    ASSERT_EQ(mkdir(F("top/a").c_str(), 0755), 0);
    ASSERT_EQ(mkdir(F("top/b").c_str(), 0755), 0);
    { std::ofstream(F("top/file")) << "x"; }
    ASSERT_EQ(symlink("a", F("top/link").c_str()), 0);
    ASSERT_EQ(mkfifo(F("top/fifo").c_str(), 0644), 0);
    EXPECT_EQ(nlink("top"), 4u) << "a and b; files, symlinks and FIFOs do not count";
    EXPECT_EQ(nlink("top/file"), 1u);
    ASSERT_EQ(mkdir(F("other").c_str(), 0755), 0);
    ASSERT_EQ(rename(F("top/a").c_str(), F("other/a").c_str()), 0);
    EXPECT_EQ(nlink("top"), 3u);
    EXPECT_EQ(nlink("other"), 3u);
    ASSERT_EQ(rename(F("top/b").c_str(), F("other/a").c_str()), 0) << "b replaces the empty a";
    EXPECT_EQ(nlink("top"), 2u);
    EXPECT_EQ(nlink("other"), 3u);
    ASSERT_EQ(rmdir(F("other/a").c_str()), 0);
    EXPECT_EQ(nlink("other"), 2u);
    // What ls -l and find (which trusts a count above 2 to skip leaves) see of a tree.
    std::string out;
    ASSERT_EQ(
        Sh("mkdir -p t/x/y t/z && touch t/x/f t/z/g && find t -type d | sort && stat -c '%n %h' t t/x t/x/y", &out), 0)
        << out;
    EXPECT_EQ(out, "t\nt/x\nt/x/y\nt/z\nt 4\nt/x 3\nt/x/y 2\n");
}

// Make tools compare a directory's mtime: it moves with every entry made, removed or
// renamed in it, and the kernel's cached attributes do not hide it.
TEST_F(FuseTest, ADirectorysTimesMoveWithItsEntries) {
    ASSERT_EQ(mkdir(F("d").c_str(), 0755), 0);
    auto mtime = [&] {
        struct stat st = {};
        EXPECT_EQ(stat(F("d").c_str(), &st), 0);
        return std::make_pair(st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    };
    for (const std::string& change :
         {std::string("touch d/f"), std::string("mkdir d/s"), std::string("ln -s f d/l"), std::string("mv d/f d/g"),
          std::string("rm d/l"), std::string("rmdir d/s"), std::string("mv d/g g")}) {
        auto before = mtime();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        ASSERT_EQ(Sh(change), 0) << change;
        EXPECT_GT(mtime(), before) << change;
    }
    auto before = mtime();
    ASSERT_EQ(Sh("echo more >> g && chmod 600 g && mv g d/g && echo x >> d/g"), 0);
    auto after_move = mtime();
    EXPECT_GT(after_move, before) << "moved in";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(Sh("echo y >> d/g && chmod 644 d/g"), 0);
    EXPECT_EQ(mtime(), after_move) << "writes and chmod of an entry leave the directory as it is";
}

TEST_F(FuseTest, PathsDeeperThanPathMaxWorkADirectoryAtATime) {
    // 24 names of 255 bytes: 6 KiB below the mount, more than PATH_MAX, reached with *at()
    // calls as find, rm -r and tar do.
    std::vector<std::string> names;
    int dir = open(F("").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir, 0);
    for (int i = 0; i < 24; ++i) {
        names.push_back(std::string(254, static_cast<char>('a' + i)) + "d");
        ASSERT_EQ(mkdirat(dir, names.back().c_str(), 0755), 0) << "depth " << i << ": " << strerror(errno);
        int next = openat(dir, names.back().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_GE(next, 0) << "depth " << i << ": " << strerror(errno);
        close(dir);
        dir = next;
    }
    int fd = openat(dir, "leaf", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(write(fd, "deep", 4), 4);
    close(fd);
    struct stat st;
    ASSERT_EQ(fstatat(dir, "leaf", &st, 0), 0);
    EXPECT_EQ(st.st_size, 4);
    ASSERT_EQ(renameat(dir, "leaf", dir, "leaf2"), 0);
    char buf[8] = {};
    fd = openat(dir, "leaf2", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(read(fd, buf, sizeof buf), 4);
    close(fd);
    EXPECT_EQ(std::string(buf, 4), "deep");
    // Through the API too: the whole path is one name of the namespace.
    std::string key = "/demo/" + absl::StrJoin(names, "/") + "/leaf2";
    ASSERT_GT(key.size(), 4096u);
    auto info = client_->Stat(*Path::Parse(key));
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->size, 4u);
    // And removed again from the bottom up.
    ASSERT_EQ(unlinkat(dir, "leaf2", 0), 0);
    close(dir);
    for (int i = 23; i >= 0; --i) {
        std::string parent = F("");
        int p = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        for (int j = 0; j < i; ++j) {
            int next = openat(p, names[j].c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            close(p);
            p = next;
        }
        ASSERT_GE(p, 0);
        ASSERT_EQ(unlinkat(p, names[i].c_str(), AT_REMOVEDIR), 0) << "depth " << i << ": " << strerror(errno);
        close(p);
    }
    EXPECT_ERRNO(stat(F(names[0]).c_str(), &st), ENOENT);
}

TEST_F(FuseTest, AFileUnlinkedOrReplacedWhileOpenKeepsWorkingUntilClosed) {
    int fd = open(F("tmp").c_str(), O_CREAT | O_RDWR, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "still here", 10), 10);
    ASSERT_EQ(unlink(F("tmp").c_str()), 0);
    EXPECT_ERRNO(access(F("tmp").c_str(), F_OK), ENOENT);
    ASSERT_EQ(pwrite(fd, "STILL", 5, 0), 5);  // the descriptor keeps working
    char buf[16] = {};
    ASSERT_EQ(pread(fd, buf, sizeof buf, 0), 10);
    EXPECT_EQ(std::string(buf, 10), "STILL here");
    for (const auto& e : std::filesystem::directory_iterator(root_)) {
        EXPECT_FALSE(absl::StartsWith(e.path().filename().string(), ".zh-unlinked-")) << e.path();
    }
    close(fd);
    // The kernel sends the release after close(2) returns: give it a moment.
    bool left = true;
    for (int i = 0; i < 200 && left; ++i) {
        auto list = client_->List({.path = P("/demo")});
        ASSERT_TRUE(list.ok());
        left = std::any_of(list->entries.begin(), list->entries.end(),
                           [](const DirEntry& e) { return e.name.rfind(".zh-unlinked-", 0) == 0; });
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_FALSE(left) << "the hidden file was left behind after the last close";
    // A rename over an open file: the descriptor keeps the old bytes.
    { std::ofstream(F("old")) << "old bytes"; }
    { std::ofstream(F("new")) << "new bytes"; }
    fd = open(F("old").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(rename(F("new").c_str(), F("old").c_str()), 0);
    ASSERT_EQ(pread(fd, buf, sizeof buf, 0), 9);
    EXPECT_EQ(std::string(buf, 9), "old bytes");
    close(fd);
    EXPECT_EQ(ReadAll(F("old")), "new bytes");
    // What Python's tempfile.TemporaryFile does when O_TMPFILE is not there.
    std::string out;
    EXPECT_EQ(Sh("python3 -c \"import tempfile; f = tempfile.TemporaryFile(dir='.'); f.write(b'x' * 100000); "
                 "f.seek(0); assert f.read() == b'x' * 100000; print('ok')\"",
                 &out),
              0)
        << out;
}

TEST_F(FuseTest, ReaddirSeesEveryEntryOnceWhileTheDirectoryChanges) {
    ASSERT_EQ(mkdir(F("many").c_str(), 0755), 0);
    for (int i = 0; i < 300; ++i) {
        std::ofstream(F("many/f" + std::to_string(i))) << i;
    }
    DIR* d = opendir(F("many").c_str());
    ASSERT_NE(d, nullptr);
    std::multiset<std::string> seen;
    int n = 0;
    while (struct dirent* e = readdir(d)) {
        seen.insert(e->d_name);
        if (++n == 50) {
            // Changes during the walk: never an entry twice, never one of the old ones lost.
            std::ofstream(F("many/new")) << "n";
            unlink(F("many/f299").c_str());
        }
    }
    closedir(d);
    for (int i = 0; i < 299; ++i) {
        EXPECT_EQ(seen.count("f" + std::to_string(i)), 1u) << i;
    }
    EXPECT_EQ(seen.count("."), 1u);
    EXPECT_EQ(seen.count(".."), 1u);
    for (const auto& name : seen) {
        EXPECT_EQ(seen.count(name), 1u) << name;
    }
}

TEST_F(FuseTest, RenameReplacesNoReplaceAndDirectories) {
    { std::ofstream(F("a")) << "A"; }
    { std::ofstream(F("b")) << "B"; }
    ASSERT_EQ(rename(F("a").c_str(), F("b").c_str()), 0);  // replaces
    EXPECT_EQ(ReadAll(F("b")), "A");
    EXPECT_ERRNO(access(F("a").c_str(), F_OK), ENOENT);
    { std::ofstream(F("c")) << "C"; }
    EXPECT_ERRNO(renameat2(AT_FDCWD, F("c").c_str(), AT_FDCWD, F("b").c_str(), RENAME_NOREPLACE), EEXIST);
    EXPECT_EQ(ReadAll(F("b")), "A");
    // A directory moves with everything under it.
    ASSERT_EQ(mkdir(F("d1").c_str(), 0755), 0);
    ASSERT_EQ(mkdir(F("d1/sub").c_str(), 0755), 0);
    { std::ofstream(F("d1/sub/deep")) << "deep"; }
    ASSERT_EQ(rename(F("d1").c_str(), F("d2").c_str()), 0);
    EXPECT_EQ(ReadAll(F("d2/sub/deep")), "deep");
    ASSERT_EQ(mkdir(F("e").c_str(), 0755), 0);
    EXPECT_ERRNO(rename(F("c").c_str(), F("e").c_str()), EISDIR);
    EXPECT_ERRNO(rename(F("e").c_str(), F("c").c_str()), ENOTDIR);
    EXPECT_ERRNO(rename(F("e").c_str(), F("d2").c_str()), ENOTEMPTY);
    EXPECT_ERRNO(rename(F("missing").c_str(), F("z").c_str()), ENOENT);
}

TEST_F(FuseTest, SymlinksMetadataAndOwnership) {
    ASSERT_EQ(symlink("target/path", F("l").c_str()), 0);
    char buf[64] = {};
    ASSERT_EQ(readlink(F("l").c_str(), buf, sizeof buf), 11);
    EXPECT_EQ(std::string(buf), "target/path");
    struct stat st;
    ASSERT_EQ(lstat(F("l").c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
    EXPECT_EQ(st.st_size, 11);
    { std::ofstream(F("m")) << "m"; }
    ASSERT_EQ(chmod(F("m").c_str(), 0600), 0);
    ASSERT_EQ(chown(F("m").c_str(), 1234, 5678), 0);
    struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 42}};
    ASSERT_EQ(utimensat(AT_FDCWD, F("m").c_str(), times, 0), 0);
    ASSERT_EQ(stat(F("m").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_uid, 1234u);
    EXPECT_EQ(st.st_gid, 5678u);
    EXPECT_EQ(st.st_mtim.tv_sec, 1000000000);
    EXPECT_EQ(st.st_mtim.tv_nsec, 42);
    // The same through the API.
    auto info = client_->Stat(P("/demo/m"));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->uid, 1234u);
    EXPECT_EQ(info->mode, 0600u);
}

// FIFOs, device nodes and unix sockets: made with their kind, mode and device number,
// listed with it, renamed and removed like files, and working as the kernel makes them work
// (a FIFO is a pipe between its openers, a bound socket takes connections).
TEST_F(FuseTest, FifosDevicesAndSocketsAreFilesOfTheirKind) {
    ASSERT_EQ(mkfifo(F("fifo").c_str(), 0640), 0) << strerror(errno);
    ASSERT_EQ(mknod(F("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << strerror(errno);
    ASSERT_EQ(mknod(F("loop").c_str(), S_IFBLK | 0660, makedev(7, 9)), 0) << strerror(errno);
    ASSERT_EQ(mknod(F("plain").c_str(), S_IFREG | 0600, 0), 0) << strerror(errno);
    EXPECT_EQ(mkfifo(F("fifo").c_str(), 0640), -1);
    EXPECT_EQ(errno, EEXIST);
    struct stat st;
    ASSERT_EQ(stat(F("fifo").c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    ASSERT_EQ(stat(F("null").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(st.st_rdev, makedev(1, 3));
    ASSERT_EQ(stat(F("loop").c_str(), &st), 0);
    EXPECT_TRUE(S_ISBLK(st.st_mode));
    EXPECT_EQ(st.st_rdev, makedev(7, 9));
    ASSERT_EQ(stat(F("plain").c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_size, 0);

    // A FIFO on the mount is a pipe.
    pid_t writer = fork();
    ASSERT_GE(writer, 0);
    if (writer == 0) {
        int fd = open(F("fifo").c_str(), O_WRONLY);
        _exit(fd >= 0 && write(fd, "through the fifo", 16) == 16 ? 0 : 1);
    }
    int fd = open(F("fifo").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << strerror(errno);
    char buf[32] = {};
    EXPECT_EQ(read(fd, buf, sizeof buf), 16);
    EXPECT_STREQ(buf, "through the fifo");
    close(fd);
    int status = 0;
    ASSERT_EQ(waitpid(writer, &status, 0), writer);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    // A unix socket bound on the mount takes connections.
    int server = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::string sock = F("sock");
    ASSERT_LT(sock.size(), sizeof addr.sun_path);
    std::memcpy(addr.sun_path, sock.c_str(), sock.size());
    ASSERT_EQ(bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
    ASSERT_EQ(listen(server, 1), 0);
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
    int accepted = accept(server, nullptr, nullptr);
    ASSERT_GE(accepted, 0);
    ASSERT_EQ(write(client, "hi", 2), 2);
    EXPECT_EQ(read(accepted, buf, 2), 2);
    for (int s : {accepted, client, server}) {
        close(s);
    }
    ASSERT_EQ(stat(F("sock").c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));

    // Listed with their kinds; seen through the API as special entries.
    std::map<std::string, unsigned char> kinds;
    DIR* dir = opendir(root_.c_str());
    ASSERT_NE(dir, nullptr);
    while (struct dirent* e = readdir(dir)) {
        kinds[e->d_name] = e->d_type;
    }
    closedir(dir);
    EXPECT_EQ(kinds["fifo"], DT_FIFO);
    EXPECT_EQ(kinds["null"], DT_CHR);
    EXPECT_EQ(kinds["loop"], DT_BLK);
    EXPECT_EQ(kinds["sock"], DT_SOCK);
    EXPECT_EQ(kinds["plain"], DT_REG);
    auto info = client_->Stat(P("/demo/null"));
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->type, ObjectType::kSpecial);
    EXPECT_EQ(info->rdev, makedev(1, 3));

    // Renamed, changed and removed like files.
    ASSERT_EQ(mkdir(F("d").c_str(), 0755), 0);
    ASSERT_EQ(rename(F("fifo").c_str(), F("d/fifo").c_str()), 0) << strerror(errno);
    ASSERT_EQ(stat(F("d/fifo").c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    ASSERT_EQ(chmod(F("d/fifo").c_str(), 0600), 0);
    ASSERT_EQ(stat(F("d/fifo").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode, S_IFIFO | 0600u);
    for (const char* name : {"d/fifo", "null", "loop", "sock", "plain"}) {
        EXPECT_EQ(unlink(F(name).c_str()), 0) << name << ": " << strerror(errno);
    }
    EXPECT_EQ(rmdir(F("d").c_str()), 0);
}

TEST_F(FuseTest, XattrsAreTheAttributesBothWays) {
    ASSERT_TRUE(client_
                    ->PutObject({.path = P("/demo/x"),
                                 .attributes = {{"age", Value::Int64(40)},
                                                {"name", Value::String("Ada")},
                                                {"ok", Value::Bool(true)},
                                                {"score", Value::Double(0.1)},
                                                {"seen", Value::Time(Timestamp{1700000000, 42})},
                                                {"v", Value::Int64Array({1, -2, 3})}}},
                                "data")
                    .ok());
    auto get = [&](const char* name) {
        char buf[256];
        ssize_t n = getxattr(F("x").c_str(), name, buf, sizeof buf);
        return n < 0 ? std::string("<") + strerror(errno) + ">" : std::string(buf, static_cast<size_t>(n));
    };
    EXPECT_EQ(get("user.age"), "40");
    EXPECT_EQ(get("user.name"), "Ada");
    EXPECT_EQ(get("user.ok"), "true");
    EXPECT_EQ(get("user.score"), "0.1");
    EXPECT_EQ(get("user.seen"), "1700000000.000000042");
    EXPECT_EQ(get("user.v"), "[1,-2,3]");
    EXPECT_EQ(get("user.none"), std::string("<") + strerror(ENODATA) + ">");
    EXPECT_EQ(get("security.selinux"), std::string("<") + strerror(ENODATA) + ">");
    char list[512];
    ssize_t n = listxattr(F("x").c_str(), list, sizeof list);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(list, static_cast<size_t>(n)),
              std::string("user.age\0user.name\0user.ok\0user.score\0user.seen\0user.v\0", 55));
    EXPECT_ERRNO(getxattr(F("x").c_str(), "user.name", list, 1), ERANGE);

    // Setting keeps the type when the text fits it; new ones are strings.
    ASSERT_EQ(setxattr(F("x").c_str(), "user.age", "41", 2, 0), 0);
    ASSERT_EQ(setxattr(F("x").c_str(), "user.city", "Haifa", 5, 0), 0);
    ASSERT_EQ(setxattr(F("x").c_str(), "user.raw", "\xff\x00", 2, 0), 0);
    EXPECT_ERRNO(setxattr(F("x").c_str(), "user.city", "x", 1, XATTR_CREATE), EEXIST);
    EXPECT_ERRNO(setxattr(F("x").c_str(), "user.zip", "x", 1, XATTR_REPLACE), ENODATA);
    EXPECT_ERRNO(setxattr(F("x").c_str(), "trusted.x", "x", 1, 0), EOPNOTSUPP);
    ASSERT_EQ(removexattr(F("x").c_str(), "user.ok"), 0);
    EXPECT_ERRNO(removexattr(F("x").c_str(), "user.ok"), ENODATA);
    auto item = client_->GetItem({.path = P("/demo/x")});
    ASSERT_TRUE(item.ok());
    EXPECT_EQ(item->attributes.at("age"), Value::Int64(41));
    EXPECT_EQ(item->attributes.at("city"), Value::String("Haifa"));
    EXPECT_EQ(item->attributes.at("raw"), Value::Blob(std::string("\xff\x00", 2)));
    EXPECT_EQ(item->attributes.count("ok"), 0u);
    EXPECT_EQ(ReadAll(F("x")), "data") << "xattrs must not touch the bytes";
}

TEST_F(FuseTest, StreamsAreDirectoriesOfShardFiles) {
    ASSERT_TRUE(client_->CreateStream({.path = P("/demo/s"), .shard_count = 2}).ok());
    ASSERT_TRUE(client_->PutRecords({.path = P("/demo/s"), .records = {{.data = "api", .shard = 1}}}).ok());
    std::set<std::string> shards;
    for (const auto& e : std::filesystem::directory_iterator(F("s"))) {
        shards.insert(e.path().filename());
        EXPECT_TRUE(e.is_regular_file());
    }
    EXPECT_EQ(shards, (std::set<std::string>{"0", "1"}));
    // Each write is one record.
    int fd = open(F("s/1").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "first\n", 6), 6);
    ASSERT_EQ(write(fd, std::string(100000, 'b').data(), 100000), 100000);
    close(fd);
    auto got = client_->GetRecords({.path = P("/demo/s"), .location = {.shard = 1, .sequence = 1}});
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->records.size(), 3u);
    EXPECT_EQ(got->records[1].data, "first\n");
    EXPECT_EQ(got->records[2].data.size(), 100000u);
    // Reading yields the records framed: "<seq> <secs>.<nanos> <length>\n<data>\n".
    std::string all = ReadAll(F("s/1"));
    std::string expect;
    for (const auto& r : got->records) {
        expect += absl::StrFormat("%d %d.%09d %d\n", r.sequence, r.arrival.secs, r.arrival.nsecs, r.data.size()) +
                  r.data + "\n";
    }
    EXPECT_TRUE(all == expect) << all.substr(0, 200);
    EXPECT_EQ(ReadAll(F("s/0")), "");
    struct stat st;
    ASSERT_EQ(stat(F("s/1").c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 3) << "a shard file's size counts its records";
    std::string out;
    EXPECT_EQ(Sh("echo appended > s/0 && head -c 200 s/0", &out), 0) << out;
    EXPECT_TRUE(absl::StrContains(out, " 9\nappended\n")) << out;
}

TEST_F(FuseTest, AKilledServerIsTakenOverAndItsCallersNeverNotice) {
    LoopThrough([&] {
        kill(fuse_pid_, SIGKILL);
        int status = 0;
        waitpid(fuse_pid_, &status, 0);
        EXPECT_TRUE(Mounted()) << "the holder keeps the mount";
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the loops wait meanwhile
        SpawnFuse();
    });
}

TEST_F(FuseTest, AnAppenderSeesEveryLineOnceThroughEightKills) {
    LoopThrough(
        [&] {
            for (int kill_no = 0; kill_no < 8; ++kill_no) {
                kill(fuse_pid_, SIGKILL);
                int status = 0;
                waitpid(fuse_pid_, &status, 0);
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                SpawnFuse();
                std::this_thread::sleep_for(std::chrono::milliseconds(400));
            }
        },
        6);
}

// The chaos cycles of the mount (issue 16): 100 SIGKILLs of zerohop-fuse at random moments
// (30..150 ms apart, some during a successor's start-up), each followed by a successor,
// under three shell loops: a reader comparing a file and an appender (LoopThrough's), and a
// loop that makes, fills, moves and removes names. The programs see no error, the appender's
// lines are each there once, and every name is where the loop left it.
TEST_F(FuseTest, AHundredServerKillsUnderReadersAndWritersLoseNothingDoubleNothingFailNothing) {
    std::string out;
    int code = -1;
    std::thread names = StartNamesLoop(25, &out, &code);
    LoopThrough(
        [&] {
            std::mt19937 rng(16);
            for (int kill_no = 0; kill_no < 100; ++kill_no) {
                std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 120));
                kill(fuse_pid_, SIGKILL);
                int status = 0;
                waitpid(fuse_pid_, &status, 0);
                SpawnFuse();
            }
        },
        25);
    int n = CheckNamesLoop(names, out, code, {"r", "w"});
    std::string lines = ReadAll(F("w"));
    std::cout << "100 kills of zerohop-fuse: " << std::count(lines.begin(), lines.end(), '\n')
              << " appended lines and " << n << " make-move-remove-create rounds, no error\n";
}

// zerohop-fuse and zerohopd killed together (a node's restart of both, or the soak's kills
// meeting): the successor starts while the daemon is down, waits for it, and serves; the
// programs on the mount never see an error.
TEST_F(FuseTest, ASuccessorStartedWhileTheDaemonIsDownWaitsForItAndServes) {
    LoopThrough([&] {
        daemon_->Kill(SIGKILL);
        kill(fuse_pid_, SIGKILL);
        int status = 0;
        waitpid(fuse_pid_, &status, 0);
        SpawnFuse();
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        daemon_->Start();
    });
}

// Creates, mkdirs, renames and unlinks in flight when zerohopd is killed and restarted have
// an unknown outcome in libzerohop; zerohop-fuse applies them again so that twice is once,
// and the programs on the mount see no error. Three restarts under a shell loop that makes,
// moves and removes names; at the end every name is where the loop left it.
TEST_F(FuseTest, NamespaceChangesInFlightAcrossDaemonRestartsNeitherFailNorDouble) {
    std::string out;
    int code = -1;
    std::thread loop = StartNamesLoop(4, &out, &code);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (int restart = 0; restart < 3; ++restart) {
        daemon_->Kill(SIGKILL);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        daemon_->Start();
        std::this_thread::sleep_for(std::chrono::milliseconds(700));
    }
    CheckNamesLoop(loop, out, code);
}

// A server killed after it applied a request and before it answered: its successor
// answers the request (it is sent again) from what was done and does not apply it twice.
// Killed before it could record that it applied it, the successor applies it again in a
// way that gives the same result (an append at the offset the kernel gave, a create that
// finds the file made, a removal that finds it gone).
TEST_F(FuseTest, ARequestAKilledServerAppliedIsAnsweredByItsSuccessorAndNeverAppliedTwice) {
    struct Case {
        const char* name;
        std::function<void()> prepare;  // through libzerohop, not the mount
        std::function<int()> call;      // on the mount: 0 or an errno
        std::function<void()> check;
    };
    auto put = [&](const std::string& name, const std::string& data) {
        ASSERT_TRUE(client_->PutObject({.path = P("/demo/" + name)}, data).ok());
    };
    auto exists = [&](const std::string& name) { return client_->Stat(P("/demo/" + name)).ok(); };
    auto err = [](int r) { return r < 0 ? errno : 0; };
    std::vector<Case> cases = {
        {"append", [&] { put("log", "a\n"); },
         [&] {
             int fd = open(F("log").c_str(), O_WRONLY | O_APPEND);
             if (fd < 0) {
                 return errno;
             }
             int e = write(fd, "b\n", 2) == 2 ? 0 : errno ? errno : EIO;
             close(fd);
             return e;
         },
         [&] { EXPECT_EQ(ReadAll(F("log")), "a\nb\n"); }},
        {"exclusive create", [] {},
         [&] {
             int fd = open(F("new").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0640);
             if (fd < 0) {
                 return errno;
             }
             close(fd);
             return 0;
         },
         [&] { EXPECT_TRUE(exists("new")); }},
        {"mkdir", [] {}, [&] { return err(mkdir(F("d").c_str(), 0755)); },
         [&] { EXPECT_TRUE(std::filesystem::is_directory(F("d"))); }},
        {"symlink", [] {}, [&] { return err(symlink("target", F("ln").c_str())); },
         [&] { EXPECT_EQ(std::filesystem::read_symlink(F("ln")), "target"); }},
        {"mkfifo", [] {}, [&] { return err(mkfifo(F("fifo").c_str(), 0600)); },
         [&] {
             struct stat st;
             EXPECT_TRUE(stat(F("fifo").c_str(), &st) == 0 && S_ISFIFO(st.st_mode));
         }},
        {"unlink", [&] { put("gone", "x"); }, [&] { return err(unlink(F("gone").c_str())); },
         [&] { EXPECT_FALSE(exists("gone")); }},
        {"rmdir", [&] { ASSERT_TRUE(client_->Mkdir({.path = P("/demo/dir")}).ok()); },
         [&] { return err(rmdir(F("dir").c_str())); }, [&] { EXPECT_FALSE(exists("dir")); }},
        {"rename", [&] { put("from", "moved"); }, [&] { return err(rename(F("from").c_str(), F("to").c_str())); },
         [&] {
             EXPECT_FALSE(exists("from"));
             EXPECT_EQ(ReadAll(F("to")), "moved");
         }},
        {"setxattr create", [&] { put("attrs", "x"); },
         [&] { return err(setxattr(F("attrs").c_str(), "user.k", "v", 1, XATTR_CREATE)); },
         [&] {
             char v[8] = {};
             EXPECT_EQ(getxattr(F("attrs").c_str(), "user.k", v, sizeof v), 1);
         }},
    };
    for (const char* fault : {"after-apply", "after-record"}) {
        for (const Case& c : cases) {
            SCOPED_TRACE(absl::StrCat(c.name, ", killed ", fault));
            ASSERT_TRUE(Sh("rm -rf ./*") == 0);
            c.prepare();
            StopFuse();
            fault_ = fault;
            StartFuse();
            fault_.clear();
            // The caller is a process of its own: a descriptor it holds on the mount must
            // not be inherited by the successor (its exec would flush it, to itself).
            pid_t caller = fork();
            ASSERT_GE(caller, 0);
            if (caller == 0) {
                _exit(c.call());
            }
            int status = 0;
            ASSERT_EQ(waitpid(fuse_pid_, &status, 0), fuse_pid_);
            EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the fault did not strike: " << status;
            SpawnFuse();
            ASSERT_EQ(waitpid(caller, &status, 0), caller);
            int result = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            EXPECT_EQ(result, 0) << strerror(result);
            c.check();
        }
    }
}

// utimensat as on ext4 for the modification time: nanoseconds kept, times before 1970 and
// after 2038, UTIME_OMIT leaves it, UTIME_NOW sets it to now; ctime moves with every change.
// Kernel passthrough: a large object of the embedded store (a file of its own) opened for
// reading is read by the kernel straight from that file: no get_object reaches zerohopd,
// whether read with read(2), O_DIRECT or mmap. Small objects, --no-object-files and keys
// that may only read go the daemon's way.
TEST_F(FuseTest, LargeObjectsAreReadByTheKernelStraightFromTheirFiles) {
    std::string big = Blocks(1 << 20, 'p');
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/big")}, big).ok());
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/small")}, "a small one").ok());
    uint64_t gets = Served("get_object");

    EXPECT_TRUE(ReadAll(F("big")) == big);
    int fd = open(F("big").c_str(), O_RDONLY | O_DIRECT);
    ASSERT_GE(fd, 0) << strerror(errno);
    void* aligned = nullptr;
    ASSERT_EQ(posix_memalign(&aligned, 4096, 4096), 0);
    for (int b : {0, 17, 255, 3}) {
        ASSERT_EQ(pread(fd, aligned, 4096, static_cast<off_t>(b) * 4096), 4096) << strerror(errno);
        EXPECT_EQ(std::string(static_cast<char*>(aligned), 4096), big.substr(static_cast<size_t>(b) * 4096, 4096));
    }
    free(aligned);
    close(fd);
    fd = open(F("big").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    void* map = mmap(nullptr, big.size(), PROT_READ, MAP_SHARED, fd, 0);
    ASSERT_NE(map, MAP_FAILED) << strerror(errno);
    EXPECT_TRUE(std::string(static_cast<char*>(map), big.size()) == big);
    munmap(map, big.size());
    close(fd);
    EXPECT_EQ(Served("get_object"), gets) << "reads of a passed-through file reached zerohopd";

    EXPECT_EQ(ReadAll(F("small")), "a small one");
    EXPECT_GT(Served("get_object"), gets) << "a small object is read through zerohopd";

    // Turned off, or with a key that may only read (zerohopd hands such a key no files):
    // the same bytes, every read through zerohopd.
    for (std::vector<std::string> args :
         {std::vector<std::string>{"--no-object-files"}, std::vector<std::string>{"--key", "ro-key", "--read-only"}}) {
        StopFuse();
        extra_args_ = args;
        StartFuse();
        gets = Served("get_object");
        EXPECT_TRUE(ReadAll(F("big")) == big) << args[0];
        EXPECT_TRUE(ReadAll(F("big")) == big) << args[0];
        EXPECT_GT(Served("get_object"), gets) << args[0];
    }
}

// Where the kernel does not read an object's file itself (here: --no-passthrough; also
// without root or on kernels before 6.9), zerohop-fuse reads it: an open for reading only
// of a large object takes its file from zerohopd and its reads are answered from there, no
// get_object. What that reader sees is what a passed-through one sees: writes in place at
// once, the version it opened after a put. An open that writes, a small object, and an
// open a predecessor made (after a kill) read through zerohopd.
TEST_F(FuseTest, WithoutPassthroughZerohopFuseReadsObjectFilesItself) {
    StopFuse();
    extra_args_ = {"--no-passthrough"};
    StartFuse();
    std::string big = Blocks(1 << 20, 'l');
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/big")}, big).ok());
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/small")}, "a small one").ok());
    uint64_t gets = Served("get_object");

    int reader = open(F("big").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(reader, 0) << strerror(errno);
    EXPECT_TRUE(ReadAll(F("big")) == big);
    int direct = open(F("big").c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    ASSERT_GE(direct, 0) << strerror(errno);
    void* aligned = nullptr;
    ASSERT_EQ(posix_memalign(&aligned, 4096, 8192), 0);
    for (int b : {255, 0, 100}) {
        ASSERT_EQ(pread(direct, aligned, 8192, static_cast<off_t>(b) * 4096), b == 255 ? 4096 : 8192)
            << "a read across the end stops there";
        EXPECT_EQ(std::string(static_cast<char*>(aligned), 4096), big.substr(static_cast<size_t>(b) * 4096, 4096));
    }
    free(aligned);
    void* map = mmap(nullptr, big.size(), PROT_READ, MAP_SHARED, reader, 0);
    ASSERT_NE(map, MAP_FAILED) << strerror(errno);
    EXPECT_TRUE(std::string(static_cast<char*>(map), big.size()) == big);
    munmap(map, big.size());
    EXPECT_EQ(Served("get_object"), gets) << "reads of a large object reached zerohopd";

    // A write through the API lands in the same file: the open readers see it at once.
    ASSERT_TRUE(client_->WriteObject({.path = P("/demo/big"), .offset = 8192, .data = "FROM-API"}).ok());
    ASSERT_EQ(posix_memalign(&aligned, 4096, 4096), 0);
    ASSERT_EQ(pread(direct, aligned, 4096, 8192), 4096);
    EXPECT_EQ(std::string(static_cast<char*>(aligned), 8), "FROM-API");
    EXPECT_EQ(Served("get_object"), gets);

    // An open that writes reads through zerohopd what it wrote; so does a small object.
    int writer = open(F("big").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(writer, 0);
    ASSERT_EQ(pwrite(writer, "WRITER", 6, 0), 6);
    EXPECT_EQ(PRead(reader, 6, 0), "WRITER") << "the reader's file is the object's";
    close(writer);
    EXPECT_EQ(ReadAll(F("small")), "a small one");
    EXPECT_GT(Served("get_object"), gets);

    // A put replaces the object with another file: the open reader keeps the version it
    // opened (as a passed-through reader, or any descriptor of a local file, does); an open
    // from now on reads the new one.
    std::string fresh = Blocks(300 << 10, 'm');
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/big")}, fresh).ok());
    ASSERT_EQ(pread(direct, aligned, 4096, 4096 * 100), 4096);
    EXPECT_EQ(std::string(static_cast<char*>(aligned), 8), "00000100");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past the attribute timeout
    EXPECT_TRUE(ReadAll(F("big")) == fresh);
    close(reader);

    // Across a kill: the successor does not know the open; its reads go through zerohopd,
    // by path (the object as it is now).
    kill(fuse_pid_, SIGKILL);
    int status = 0;
    waitpid(fuse_pid_, &status, 0);
    StartFuse();
    gets = Served("get_object");
    ASSERT_EQ(pread(direct, aligned, 4096, 4096 * 10), 4096) << strerror(errno);
    EXPECT_EQ(std::string(static_cast<char*>(aligned), 8), "00000010");
    EXPECT_EQ(std::string(static_cast<char*>(aligned) + 8, 8), std::string(8, 'm')) << "the new version";
    EXPECT_GT(Served("get_object"), gets);
    free(aligned);
    close(direct);
}

// Writes pass through as well: the kernel writes the object's file itself (pwrite,
// O_DIRECT, O_APPEND, a shared mapping, ftruncate from the mount goes to zerohopd), no write
// reaches zerohopd, and the API sees the size and bytes at once, before the writer closes.
TEST_F(FuseTest, LargeObjectsAreWrittenByTheKernelStraightIntoTheirFiles) {
    std::string big = Blocks(1 << 20, 'w');
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/big")}, big).ok());
    uint64_t writes = Served("write_object") + Served("append");

    int fd = open(F("big").c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(pwrite(fd, "PWRITE", 6, 4096), 6);
    auto got = client_->GetObject({.path = P("/demo/big"), .offset = 4096, .length = 6});
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(*got, "PWRITE") << "seen by the API while the writer still has it open";
    void* aligned = nullptr;
    ASSERT_EQ(posix_memalign(&aligned, 4096, 4096), 0);
    memset(aligned, 'D', 4096);
    int direct = open(F("big").c_str(), O_WRONLY | O_DIRECT);
    ASSERT_GE(direct, 0) << strerror(errno);
    ASSERT_EQ(pwrite(direct, aligned, 4096, 8192), 4096) << strerror(errno);
    close(direct);
    free(aligned);
    int appender = open(F("big").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(appender, 0);
    ASSERT_EQ(write(appender, "appended\n", 9), 9);
    close(appender);
    auto st = client_->Stat(P("/demo/big"));
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->size, big.size() + 9);
    void* map = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(map, MAP_FAILED) << strerror(errno);
    memcpy(map, "MAPPED", 6);
    ASSERT_EQ(msync(map, 4096, MS_SYNC), 0);
    munmap(map, 4096);
    ASSERT_EQ(fsync(fd), 0) << strerror(errno);
    close(fd);
    EXPECT_EQ(Served("write_object") + Served("append"), writes) << "a write of a passed-through file reached zerohopd";

    std::string want = big + "appended\n";
    want.replace(0, 6, "MAPPED");
    want.replace(4096, 6, "PWRITE");
    want.replace(8192, 4096, std::string(4096, 'D'));
    auto all = client_->GetObject({.path = P("/demo/big")});
    ASSERT_TRUE(all.ok());
    EXPECT_TRUE(*all == want) << "the API reads every write";
    EXPECT_TRUE(ReadAll(F("big")) == want);
    struct stat mine = {};
    ASSERT_EQ(stat(F("big").c_str(), &mine), 0);
    st = client_->Stat(P("/demo/big"));
    EXPECT_EQ(static_cast<uint64_t>(mine.st_size), st->size);
    EXPECT_EQ(mine.st_mtim.tv_sec, st->mtime.secs);
    EXPECT_EQ(mine.st_mtim.tv_nsec, st->mtime.nsecs) << "the mount and the API agree on the mtime";
    ASSERT_EQ(truncate(F("big").c_str(), 5000), 0);
    EXPECT_EQ(client_->Stat(P("/demo/big"))->size, 5000u);

    // Without passthrough, the same writes go through zerohopd.
    StopFuse();
    extra_args_ = {"--no-passthrough"};
    StartFuse();
    fd = open(F("big").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "VIA-ZHD", 7, 100), 7);
    close(fd);
    EXPECT_GT(Served("write_object") + Served("append"), writes);
    EXPECT_EQ(*client_->GetObject({.path = P("/demo/big"), .offset = 100, .length = 7}), "VIA-ZHD");
}

// A passed-through reader and everything else that can change the object at once: writes
// through the mount (answered with the same backing file, their bytes through zerohopd),
// writes and puts through the API. Readers see what a local file would show; one that
// opened before a put keeps the old version, as every descriptor of the store does.
TEST_F(FuseTest, PassedThroughReadersSeeWritesAndPutsAsOnALocalFile) {
    std::string big = Blocks(512 << 10, 'q');
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/obj")}, big).ok());
    int reader = open(F("obj").c_str(), O_RDONLY);
    ASSERT_GE(reader, 0);
    ASSERT_EQ(PRead(reader, 8, 4096), "00000001");

    // A writer on the mount while it passes through: in place, seen at once, size right.
    int writer = open(F("obj").c_str(), O_RDWR);
    ASSERT_GE(writer, 0) << strerror(errno);
    ASSERT_EQ(pwrite(writer, "WRITTEN!", 8, 4096), 8);
    EXPECT_EQ(PRead(reader, 8, 4096), "WRITTEN!");
    EXPECT_EQ(PRead(writer, 8, 4096), "WRITTEN!");
    ASSERT_EQ(pwrite(writer, "tail", 4, big.size()), 4);
    struct stat st;
    ASSERT_EQ(fstat(reader, &st), 0);
    EXPECT_EQ(st.st_size, static_cast<off_t>(big.size() + 4));
    EXPECT_EQ(PRead(reader, 4, static_cast<off_t>(big.size())), "tail");
    auto info = client_->Stat(P("/demo/obj"));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->size, big.size() + 4) << "the API sees the size the mount wrote";
    close(writer);

    // A write through the API, at an offset: the same file, seen by the open reader.
    ASSERT_TRUE(client_->WriteObject({.path = P("/demo/obj"), .offset = 8192, .data = "FROM-API"}).ok());
    EXPECT_EQ(PRead(reader, 8, 8192), "FROM-API");

    // A put through the API replaces the object with another file: the open reader keeps
    // the old version; an open from now on reads the new one, also while the old is open.
    std::string fresh = Blocks(300 << 10, 'r');
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/obj")}, fresh).ok());
    EXPECT_EQ(PRead(reader, 8, 4096), "WRITTEN!");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past the attribute timeout
    EXPECT_TRUE(ReadAll(F("obj")) == fresh);
    close(reader);
    EXPECT_TRUE(ReadAll(F("obj")) == fresh);

    // Replaced through the mount (truncated, rewritten) and renamed over: always the bytes
    // last written.
    { std::ofstream(F("obj"), std::ios::binary) << big; }
    EXPECT_TRUE(ReadAll(F("obj")) == big);
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/other")}, fresh).ok());
    reader = open(F("obj").c_str(), O_RDONLY);
    ASSERT_GE(reader, 0);
    ASSERT_EQ(rename(F("other").c_str(), F("obj").c_str()), 0);
    EXPECT_EQ(PRead(reader, 8, 0), big.substr(0, 8)) << "the open descriptor keeps the old bytes";
    close(reader);
    EXPECT_TRUE(ReadAll(F("obj")) == fresh);
}

// A reader whose file passes through keeps reading across a SIGKILL of zerohop-fuse, and
// the successor answers new opens of that file (it must pass through with the backing
// file its predecessor registered, or the kernel fails the open).
TEST_F(FuseTest, PassedThroughFilesKeepWorkingAcrossAServerKill) {
    std::string big = Blocks(1 << 20, 's');
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/big")}, big).ok());
    // (Each zerohop-fuse forked from this test closes it at exec: with FOPEN_NOFLUSH that
    // close waits for no server. Without close-on-exec it would hold a file of its own
    // mount, which keeps the mount, so that a stop never ends.)
    int reader = open(F("big").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(reader, 0);
    ASSERT_EQ(PRead(reader, 8, 0), "00000000");
    // And a writer appending through the same backing file across the kills: its open is
    // the predecessor's, its writes go on into the same file, and the API sees each one.
    // (A write may ask the server first, for security.capability once the kernel refreshed
    // the attributes: it then waits for the successor, like any call that needs one.)
    int writer = open(F("big").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    ASSERT_GE(writer, 0);
    for (int round = 0; round < 3; ++round) {
        kill(fuse_pid_, SIGKILL);
        int status = 0;
        waitpid(fuse_pid_, &status, 0);
        StartFuse();
        std::string line = absl::StrCat("line ", round, "\n");
        ASSERT_EQ(write(writer, line.data(), line.size()), static_cast<ssize_t>(line.size())) << strerror(errno);
        big += line;
        EXPECT_EQ(client_->Stat(P("/demo/big"))->size, big.size()) << "round " << round;
        EXPECT_EQ(PRead(reader, 8, 4096 * 100), "00000100");
        EXPECT_TRUE(ReadAll(F("big")) == big) << "round " << round;
        int again = open(F("big").c_str(), O_RDONLY | O_DIRECT);
        ASSERT_GE(again, 0) << strerror(errno);
        close(again);
    }
    close(writer);
    EXPECT_TRUE(*client_->GetObject({.path = P("/demo/big")}) == big);
    close(reader);
    std::string fresh = Blocks(200 << 10, 't');
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/big")}, fresh).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_TRUE(ReadAll(F("big")) == fresh);
}

// A directory read begun before a SIGKILL of zerohop-fuse goes on with that directory's
// names after it, even when the successor has opened another directory meanwhile: the
// successor's handle numbers never equal those the kernel holds from its predecessor.
TEST_F(FuseTest, ADirectoryReadAcrossAServerKillKeepsItsOwnNames) {
    for (const char* dir : {"a", "b"}) {
        ASSERT_TRUE(client_->Mkdir({.path = P(absl::StrCat("/demo/", dir))}).ok());
        for (int i = 0; i < 100; ++i) {
            std::string name = absl::StrFormat("%s%03d", dir, i) + std::string(200, dir[0]);
            ASSERT_TRUE(client_->PutObject({.path = P(absl::StrCat("/demo/", dir, "/", name))}, "x").ok());
        }
    }
    // Names the directory holds, read a few kilobytes (one kernel request) at a time.
    auto read_some = [](int fd, std::vector<std::string>* names) {
        alignas(8) char buf[4096];
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        for (long at = 0; at < n;) {
            auto* d = reinterpret_cast<struct dirent64*>(buf + at);
            if (std::string(d->d_name) != "." && std::string(d->d_name) != "..") {
                names->push_back(d->d_name);
            }
            at += d->d_reclen;
        }
        return n;
    };
    int a = open(F("a").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(a, 0);
    std::vector<std::string> in_a;
    ASSERT_GT(read_some(a, &in_a), 0);
    ASSERT_LT(in_a.size(), 100u) << "the test needs a read that stops mid-directory";
    kill(fuse_pid_, SIGKILL);
    int status = 0;
    waitpid(fuse_pid_, &status, 0);
    StartFuse();
    int b = open(F("b").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(b, 0);
    std::vector<std::string> in_b;
    ASSERT_GT(read_some(b, &in_b), 0);
    while (read_some(a, &in_a) > 0) {
    }
    close(a);
    close(b);
    std::set<std::string> names(in_a.begin(), in_a.end());
    EXPECT_EQ(in_a.size(), 100u);
    EXPECT_EQ(names.size(), 100u) << "every name of a, once";
    for (const std::string& name : in_a) {
        ASSERT_EQ(name[0], 'a') << "a name of another directory: " << name.substr(0, 4);
    }
}

TEST_F(FuseTest, ModificationAndAccessTimesKeepNanosecondsBefore1970AndAfter2038) {
    { std::ofstream(F("t")) << "x"; }
    auto times = [&] {
        struct stat st = {};
        EXPECT_EQ(stat(F("t").c_str(), &st), 0);
        return st;
    };
    for (struct timespec when : {timespec{-315619200, 123456789}, timespec{4102444800, 987654321}}) {
        struct timespec ts[2] = {{0, UTIME_OMIT}, when};
        ASSERT_EQ(utimensat(AT_FDCWD, F("t").c_str(), ts, 0), 0) << strerror(errno);
        std::this_thread::sleep_for(std::chrono::milliseconds(250));  // past --attr-timeout
        struct stat st = times();
        EXPECT_EQ(st.st_mtim.tv_sec, when.tv_sec);
        EXPECT_EQ(st.st_mtim.tv_nsec, when.tv_nsec);
    }
    struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    ASSERT_EQ(utimensat(AT_FDCWD, F("t").c_str(), omit, 0), 0);
    EXPECT_EQ(times().st_mtim.tv_sec, 4102444800) << "UTIME_OMIT changes nothing";
    struct timespec now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    time_t before = time(nullptr);
    ASSERT_EQ(utimensat(AT_FDCWD, F("t").c_str(), now, 0), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    EXPECT_GE(times().st_mtim.tv_sec, before);
    EXPECT_LE(times().st_mtim.tv_sec, time(nullptr));
    // Access times: set by utimensat (each time on its own with UTIME_OMIT for the other),
    // kept with their nanoseconds; reads and writes do not move them (as with noatime).
    struct timespec atime_only[2] = {{-1, 5}, {0, UTIME_OMIT}};
    struct stat kept = times();
    ASSERT_EQ(utimensat(AT_FDCWD, F("t").c_str(), atime_only, 0), 0) << strerror(errno);
    struct stat st = times();
    EXPECT_EQ(st.st_atim.tv_sec, -1);
    EXPECT_EQ(st.st_atim.tv_nsec, 5);
    EXPECT_EQ(st.st_mtim.tv_sec, kept.st_mtim.tv_sec) << "UTIME_OMIT keeps the mtime";
    EXPECT_EQ(st.st_mtim.tv_nsec, kept.st_mtim.tv_nsec);
    std::string out;
    ASSERT_EQ(Sh("cat t >/dev/null && echo z >> t && touch -a -d '2100-01-02 03:04:05.000000006 UTC' t && "
                 "touch -m -d '1960-01-01 UTC' t && TZ=UTC stat -c '%x|%y' t",
                 &out),
              0)
        << out;
    EXPECT_EQ(out, "2100-01-02 03:04:05.000000006 +0000|1960-01-01 00:00:00.000000000 +0000\n");
    struct timespec both_now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    before = time(nullptr);
    ASSERT_EQ(utimensat(AT_FDCWD, F("t").c_str(), both_now, 0), 0);
    st = times();
    EXPECT_GE(st.st_atim.tv_sec, before);
    EXPECT_EQ(st.st_atim.tv_sec, st.st_mtim.tv_sec);
    EXPECT_EQ(st.st_atim.tv_nsec, st.st_mtim.tv_nsec) << "UTIME_NOW for both is one now";
    // ctime: every change of data or metadata moves it forward.
    for (const std::string& change : {std::string("chmod 600 t"), std::string("echo y >> t"),
                                      std::string("mv t t2 && mv t2 t")}) {
        struct stat old = times();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        ASSERT_EQ(Sh(change), 0) << change;
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        struct stat st = times();
        EXPECT_GT(std::make_pair(st.st_ctim.tv_sec, st.st_ctim.tv_nsec),
                  std::make_pair(old.st_ctim.tv_sec, old.st_ctim.tv_nsec))
            << change;
    }
}

// With allow_other, users other than root get exactly the kernel's rules: default_permissions
// applies them to the modes, owners and sticky bits the mount keeps, and the kernel asks the
// mount to drop setuid/setgid where Linux drops them.
TEST_F(FuseTest, OtherUsersGetTheKernelsPermissionRules) {
    StopFuse();
    extra_args_ = {"--allow-other"};
    StartFuse();
    // (The shell starts in the mount as root: the users need no way through the test's 0700 directory.)
    auto as = [&](int uid, const std::string& cmd, std::string* out = nullptr) {
        return Sh(absl::StrCat("setpriv --reuid=", uid, " --regid=", uid, " --clear-groups sh -c '", cmd, "' 2>&1"),
                  out);
    };
    auto mode = [&](const std::string& rel) {
        struct stat st = {};
        EXPECT_EQ(stat(F(rel).c_str(), &st), 0) << rel;
        return st.st_mode & 07777;
    };
    std::string setup;
    ASSERT_EQ(Sh("mkdir -m 1777 shared && mkdir -m 755 mine && chown 1001:1001 mine 2>&1", &setup), 0)
        << setup;
    ASSERT_EQ(as(1001, "echo a > shared/a && echo b > mine/b"), 0);
    struct stat st = {};
    ASSERT_EQ(stat(F("shared/a").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1001u) << "a file belongs to whoever made it";
    EXPECT_EQ(st.st_gid, 1001u);
    // A sticky directory: others may add, not remove or rename what is not theirs.
    std::string out;
    EXPECT_NE(as(1002, "rm -f shared/a", &out), 0);
    EXPECT_TRUE(absl::StrContains(out, "Operation not permitted")) << out;
    EXPECT_NE(as(1002, "mv shared/a shared/z"), 0);
    EXPECT_EQ(as(1002, "echo c > shared/c"), 0);
    EXPECT_EQ(as(1001, "rm shared/a"), 0) << "the owner may";
    // Owner, group, other.
    EXPECT_NE(as(1002, "echo d > mine/d"), 0) << "not in another's 755 directory";
    EXPECT_EQ(as(1002, "cat mine/b"), 0);
    EXPECT_EQ(as(1001, "chmod 600 mine/b"), 0);
    EXPECT_NE(as(1002, "cat mine/b"), 0) << "600: the owner only";
    EXPECT_EQ(as(1001, "cat mine/b"), 0);
    // chown: root only (a non-owner and the owner alike get EPERM).
    EXPECT_NE(as(1002, "chown 1002 mine/b", &out), 0);
    EXPECT_TRUE(absl::StrContains(out, "Operation not permitted")) << out;
    EXPECT_NE(as(1001, "chown 1002 mine/b", &out), 0);
    EXPECT_TRUE(absl::StrContains(out, "Operation not permitted")) << out;
    // setuid and setgid go when another than root writes, and at a chown.
    EXPECT_EQ(as(1001, "chmod 6755 mine/b && echo more >> mine/b"), 0);
    EXPECT_EQ(mode("mine/b"), 0755u);
    EXPECT_EQ(as(1001, "chmod 4755 mine/b"), 0);
    EXPECT_EQ(mode("mine/b"), 04755u);
    EXPECT_EQ(Sh("chown 1002 mine/b"), 0);
    EXPECT_EQ(mode("mine/b"), 0755u);
    // No hard links, for anyone (EPERM, as documented).
    EXPECT_NE(as(1002, "ln shared/c shared/c2", &out), 0);
    EXPECT_TRUE(absl::StrContains(out, "Operation not permitted")) << out;
}

TEST_F(FuseTest, ARestartedDaemonIsReconnectedToAndCallersNeverNotice) {
    LoopThrough([&] {
        daemon_->Kill(SIGKILL);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        daemon_->Start();
    });
}

TEST_F(FuseTest, WithoutASuccessorCallersFailInsteadOfWaitingForever) {
    { std::ofstream(F("f")) << "x"; }
    kill(fuse_pid_, SIGKILL);
    int status = 0;
    waitpid(fuse_pid_, &status, 0);
    fuse_pid_ = -1;
    auto start = absl::Now();
    struct stat st;
    errno = 0;
    int r = stat(F("other").c_str(), &st);  // waits for a successor that never comes
    EXPECT_EQ(r, -1);
    // The waiting call sees the connection aborted; later ones, no connection.
    EXPECT_TRUE(errno == ECONNABORTED || errno == ENOTCONN) << strerror(errno);
    EXPECT_GE(absl::Now() - start, absl::Seconds(3));
    EXPECT_LT(absl::Now() - start, absl::Seconds(20));
    ::umount2(mnt_.c_str(), MNT_DETACH);
}

// However it is told to stop (a signal, an unmount, both at once, signals in a row), the
// server unmounts once and exits 0. An unmount that ends the loop while a SIGTERM arrives
// used to unmount twice at once (a double free in libfuse, seen by ASan in CI).
TEST_F(FuseTest, StopsCleanlyHoweverItIsStopped) {
    auto stop = [&](const char* how, auto&& act) {
        SCOPED_TRACE(how);
        act();
        int status = 0;
        ASSERT_EQ(waitpid(fuse_pid_, &status, 0), fuse_pid_);
        fuse_pid_ = -1;
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "zerohop-fuse ended with status " << status;
        EXPECT_FALSE(Mounted());
        ::umount2(mnt_.c_str(), MNT_DETACH);  // if it did not
        StartFuse();
    };
    stop("SIGTERM", [&] { kill(fuse_pid_, SIGTERM); });
    stop("SIGINT twice", [&] {
        kill(fuse_pid_, SIGINT);
        kill(fuse_pid_, SIGINT);
    });
    stop("unmounted", [&] { ::umount2(mnt_.c_str(), MNT_DETACH); });
    // Signals all through the server's own shutdown (the child stays a zombie until
    // reaped, so its pid is not reused meanwhile).
    for (int round = 0; round < 3; ++round) {
        stop("unmounted while SIGTERMs keep coming", [&] {
            ::umount2(mnt_.c_str(), MNT_DETACH);
            siginfo_t info = {};
            absl::Time deadline = absl::Now() + absl::Seconds(30);
            do {
                kill(fuse_pid_, SIGTERM);
                info.si_pid = 0;
                ASSERT_EQ(waitid(P_PID, fuse_pid_, &info, WEXITED | WNOHANG | WNOWAIT), 0);
                if (absl::Now() > deadline) {
                    ADD_FAILURE() << "zerohop-fuse did not stop under a stream of SIGTERMs";
                    kill(fuse_pid_, SIGKILL);
                    break;
                }
            } while (info.si_pid == 0);
        });
    }
    { std::ofstream(F("after")) << "still served"; }
    EXPECT_EQ(ReadAll(F("after")), "still served");
}

TEST_F(FuseTest, AChangeThroughTheApiIsSeenWithinTheTimeout) {
    { std::ofstream(F("shared")) << "one"; }
    EXPECT_EQ(ReadAll(F("shared")), "one");
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/shared")}, "two, longer").ok());
    ASSERT_TRUE(client_->PutObject({.path = P("/demo/born")}, "new").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(400));  // the mount's timeouts are 0.2 s
    EXPECT_EQ(ReadAll(F("shared")), "two, longer");
    EXPECT_EQ(ReadAll(F("born")), "new");
    ASSERT_TRUE(client_->Delete({.path = P("/demo/born")}).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    EXPECT_ERRNO(access(F("born").c_str(), F_OK), ENOENT);
}

TEST_F(FuseTest, ManyThreadsAndProcessesAtOnce) {
    constexpr int kThreads = 8;
    std::vector<std::thread> threads;
    std::atomic<int> bad{0};
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::string dir = F("t" + std::to_string(t));
            if (mkdir(dir.c_str(), 0755) != 0) {
                ++bad;
                return;
            }
            for (int i = 0; i < 40; ++i) {
                std::string path = dir + "/f" + std::to_string(i);
                std::string body = absl::StrCat("thread ", t, " file ", i, std::string(i * 100, 'x'));
                { std::ofstream(path) << body; }
                if (ReadAll(path) != body) {
                    ++bad;
                }
                std::filesystem::directory_iterator it(dir);  // listings while others write
            }
        });
    }
    std::string out;
    int rc = Sh("for p in 1 2 3 4; do (mkdir p$p && for i in $(seq 1 30); do echo $p-$i > p$p/$i; cat p$p/$i >/dev/null; "
                "done) & done; wait; cat p*/* | wc -l",
                &out);
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out, "120\n");
}

TEST_F(FuseTest, CopyTarAndRsyncRoundTrip) {
    const std::string src = std::string(getenv("ZH_SOURCE_ROOT") ? getenv("ZH_SOURCE_ROOT") : ".") + "/client";
    std::string out;
    EXPECT_EQ(Sh("cp -r '" + src + "' copy && diff -r '" + src + "' copy", &out), 0) << out;
    EXPECT_EQ(Sh("tar cf '" + dir_ + "/a.tar' -C '" + src + "' . && mkdir untar && tar xf '" + dir_ +
                     "/a.tar' -C untar && diff -r '" + src + "' untar && tar cf '" + dir_ + "/b.tar' -C untar .",
                 &out),
              0)
        << out;
    EXPECT_EQ(Sh("rsync -a '" + src + "/' synced/ && diff -r '" + src + "' synced && rsync -a --checksum -i '" + src +
                     "/' synced/ | wc -l",
                 &out),
              0)
        << out;
    EXPECT_EQ(out, "0\n") << "a second rsync found differences";
}

TEST_F(FuseTest, GitRepositoriesWorkAndStayConsistent) {
    const std::string src = std::string(getenv("ZH_SOURCE_ROOT") ? getenv("ZH_SOURCE_ROOT") : ".") + "/shmring";
    std::string out;
    int rc = Sh("git init -q repo && cd repo && git config user.email t@example.com && git config user.name t && "
                "cp -r '" + src + "' . && git add -A && git commit -qm first && echo more >> shmring/meson.build && "
                "git commit -qam second && git gc -q && git fsck --full --strict && git log --oneline | wc -l",
                &out);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_TRUE(absl::EndsWith(out, "2\n")) << out;
    rc = Sh("git clone -q repo clone && cd clone && git fsck --full && git diff --stat HEAD~1 | tail -1", &out);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_TRUE(absl::StrContains(out, "1 file changed")) << out;
}

TEST_F(FuseTest, Sqlite3KeepsItsDatabaseIntact) {
    std::string out;
    int rc = Sh("sqlite3 db.sqlite 'create table t(k integer primary key, v text);' && "
                "for i in $(seq 1 20); do sqlite3 db.sqlite \"begin; insert into t(v) select hex(randomblob(100)) "
                "from (select 1 union all select 2 union all select 3); commit;\"; done && "
                "sqlite3 db.sqlite 'pragma integrity_check; select count(*) from t; vacuum; pragma integrity_check;'",
                &out);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out, "ok\n60\nok\n");
}

TEST_F(FuseTest, AReadOnlyMountReadsAndRefusesWritesWithErofs) {
    { std::ofstream(F("kept")) << "before"; }
    StopFuse();
    extra_args_ = {"--read-only"};
    StartFuse();
    EXPECT_EQ(ReadAll(F("kept")), "before");
    EXPECT_LT(::open(F("new").c_str(), O_WRONLY | O_CREAT, 0644), 0);
    EXPECT_EQ(errno, EROFS);
    EXPECT_LT(::open(F("kept").c_str(), O_WRONLY | O_APPEND), 0);
    EXPECT_EQ(errno, EROFS);
    EXPECT_NE(::mkdir(F("d").c_str(), 0755), 0);
    EXPECT_EQ(errno, EROFS);
    EXPECT_NE(::unlink(F("kept").c_str()), 0);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(*client_->GetObject({.path = P("/demo/kept")}), "before");
}

TEST_F(FuseTest, WithWritebackCachingWritesReachTheBackendByCloseAndProgramsWork) {
    StopFuse();
    extra_args_ = {"--writeback-cache"};
    StartFuse();
    std::string out;
    // Many small writes and appends, gathered by the kernel; after close the API sees them.
    int rc = Sh("for i in $(seq 1 500); do echo line $i; done > lines && echo tail >> lines && "
                "printf abc > small && printf XY | dd of=small bs=1 seek=1 conv=notrunc status=none && cat small",
                &out);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(out, "aXY");
    auto got = client_->GetObject({.path = P("/demo/lines")});
    ASSERT_TRUE(got.ok()) << got.status();
    std::string want;
    for (int i = 1; i <= 500; ++i) {
        want += "line " + std::to_string(i) + "\n";
    }
    EXPECT_EQ(*got, want + "tail\n");
    // Read-modify-write of pages (a partial page written to a file opened write-only).
    rc = Sh("sqlite3 wb.sqlite 'create table t(v); insert into t select hex(randomblob(300)) from "
            "(with recursive c(x) as (select 1 union all select x+1 from c where x<200) select x from c); "
            "pragma integrity_check; select count(*) from t;'",
            &out);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out, "ok\n200\n");
    rc = Sh("fio --name=wb --filename=fio.wb --size=8M --rw=randwrite --bs=4k --verify=crc32c --ioengine=psync "
            "--minimal >/dev/null && echo ok",
            &out);
    EXPECT_EQ(rc, 0) << out;
}

TEST_F(FuseTest, FioVerifiesWhatItWrote) {
    std::string out;
    int rc = Sh("fio --name=buffered --filename=fio.buffered --size=16M --rw=randwrite --bs=4k --verify=crc32c "
                "--ioengine=psync --minimal && "
                "fio --name=direct --filename=fio.direct --size=16M --rw=randrw --bs=64k --direct=1 --verify=md5 "
                "--ioengine=psync --iodepth=1 --minimal",
                &out);
    EXPECT_EQ(rc, 0) << out;
    // The fifth field of the terse format is the job's error number.
    std::istringstream lines(out);
    std::string line;
    int jobs = 0;
    while (std::getline(lines, line)) {
        std::vector<std::string> f;
        std::stringstream ls(line);
        std::string field;
        while (std::getline(ls, field, ';')) {
            f.push_back(field);
        }
        if (f.size() > 4 && f[0] == "3") {
            ++jobs;
            EXPECT_EQ(f[4], "0") << line;
        }
    }
    EXPECT_EQ(jobs, 2) << out;
}

}  // namespace
}  // namespace zerohop
