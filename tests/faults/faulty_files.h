#pragma once
// Files that fail on demand and lose what a power cut loses: a wrapper of RocksDB's
// FileSystem and of the embedded store's object-file calls (EmbeddedOptions'
// `file_system` and `object_file_calls`), sharing one record of what each file holds and
// how much of it was made durable. In the manner of RocksDB's own FaultInjectionTestFS.
//
//   FaultyFiles files;
//   opts.file_system = files.file_system();
//   opts.object_file_calls = files.object_file_calls();
//   files.Fail(FaultyFiles::Call::kWrite, FaultyFiles::Kind::kWal, ENOSPC);  // until Clear()
//   ...
//   files.CutPowerAfter(40);   // the 41st changing call, and every one after, fails
//   backend.reset();           // close the store as the machine goes down
//   files.RestorePower(seed);  // unsynced bytes and unsynced names are lost
//
// What a power cut loses, per file written since the last RestorePower (or since this was
// made): the bytes after its last fsync/fdatasync, of which a random prefix survives (a
// torn tail), and the whole file if it was created and its directory was not synced after.
// Not modelled: renames and unlinks undone by a cut (renamed names count as durable), and
// in-place overwrites of synced bytes reverting.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "embedded/options.h"

namespace zerohop {

class FaultyFiles {
public:
    // Which files a fault applies to, by name.
    enum class Kind { kAny, kWal, kTable, kManifest, kObject };
    // Which calls: writes (append, pwrite, ftruncate), syncs (fsync, fdatasync, syncfs,
    // directory syncs), creates (new files), renames. Unlinks fail only after a power cut.
    enum class Call { kWrite, kSync, kCreate, kRename };

    FaultyFiles();
    ~FaultyFiles();
    FaultyFiles(const FaultyFiles&) = delete;
    FaultyFiles& operator=(const FaultyFiles&) = delete;

    std::shared_ptr<rocksdb::FileSystem> file_system() const { return file_system_; }
    std::shared_ptr<ObjectFileCalls> object_file_calls() const { return object_file_calls_; }

    // Every later `call` on a file of `kind` fails with `error` (EIO, ENOSPC, ...) until Clear().
    void Fail(Call call, Kind kind, int error);
    // The next write to a file of `kind` writes the first half of its bytes, then fails with EIO.
    void TearNextWrite(Kind kind);
    void Clear();
    // How many calls have been failed so far.
    int failed() const;
    // How many calls that change files have been made so far.
    int calls() const;

    // The power goes after `n` more calls that change files: that call and every one after
    // it fails with EIO, as if the machine were gone.
    void CutPowerAfter(int n);
    bool power_cut() const;
    // Call once the store is closed: files lose what the cut loses (seeded randomness picks
    // how much of each unsynced tail survives) and calls work again. Returns what was lost,
    // one line per file, for test output.
    std::string RestorePower(uint64_t seed);

    struct State;

private:
    std::shared_ptr<State> state_;
    std::shared_ptr<rocksdb::FileSystem> file_system_;
    std::shared_ptr<ObjectFileCalls> object_file_calls_;
};

}  // namespace zerohop
