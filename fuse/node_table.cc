#include "node_table.h"

#include <unistd.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"

namespace zerohop::fuse {

NodeTable::NodeTable(std::string root) : root_(root == "/" ? "" : std::move(root)) {
    absl::MutexLock lock(&mu_);
    nodes_[kRootIno] = Node{0, "", 1, true};  // the root is never forgotten
}

Ino NodeTable::Lookup(Ino parent, std::string_view name, uint64_t count, bool shard) {
    absl::MutexLock lock(&mu_);
    Key key{parent, std::string(name)};
    auto it = by_name_.find(key);
    if (it != by_name_.end()) {
        Node& n = nodes_[it->second];
        n.lookups += count;
        n.shard = shard;
        return it->second;
    }
    Ino ino = next_++;
    Node n{parent, std::string(name), count, true};
    n.shard = shard;
    nodes_[ino] = std::move(n);
    Log(shard ? 'S' : 'A', ino, parent, name);
    by_name_.emplace(std::move(key), ino);
    return ino;
}

bool NodeTable::Forget(Ino ino, uint64_t count) {
    if (ino == kRootIno) {
        return false;
    }
    absl::MutexLock lock(&mu_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) {
        return false;
    }
    Node& n = it->second;
    n.lookups = count >= n.lookups ? 0 : n.lookups - count;
    if (n.lookups == 0) {
        if (n.linked) {
            by_name_.erase(Key{n.parent, n.name});
        }
        nodes_.erase(it);
        Log('F', ino);
        return true;
    }
    return false;
}

std::optional<std::string> NodeTable::PathLocked(Ino ino) const {
    std::vector<const std::string*> parts;
    while (ino != kRootIno) {
        auto it = nodes_.find(ino);
        if (it == nodes_.end()) {
            return std::nullopt;
        }
        parts.push_back(&it->second.name);
        ino = it->second.parent;
    }
    std::string path = root_;
    for (auto p = parts.rbegin(); p != parts.rend(); ++p) {
        path += '/';
        path += **p;
    }
    return path.empty() ? "/" : path;
}

std::optional<std::string> NodeTable::PathOf(Ino ino) const {
    absl::ReaderMutexLock lock(&mu_);
    return PathLocked(ino);
}

std::optional<std::string> NodeTable::ChildPath(Ino parent, std::string_view name) const {
    absl::ReaderMutexLock lock(&mu_);
    auto p = PathLocked(parent);
    if (!p) {
        return std::nullopt;
    }
    if (*p != "/") {
        *p += '/';
    }
    p->append(name);
    return p;
}

void NodeTable::Move(Ino parent, std::string_view name, Ino new_parent, std::string_view new_name) {
    absl::MutexLock lock(&mu_);
    Key to{new_parent, std::string(new_name)};
    if (auto old = by_name_.find(to); old != by_name_.end()) {
        nodes_[old->second].linked = false;  // replaced: open handles keep it until forgotten
        Log('U', old->second);
        by_name_.erase(old);
    }
    auto it = by_name_.find(Key{parent, std::string(name)});
    if (it == by_name_.end()) {
        return;
    }
    Ino ino = it->second;
    by_name_.erase(it);
    Node& n = nodes_[ino];
    n.parent = new_parent;
    n.name = std::string(new_name);
    by_name_.emplace(std::move(to), ino);
    Log('M', ino, new_parent, new_name);
}

void NodeTable::Unlink(Ino parent, std::string_view name) {
    absl::MutexLock lock(&mu_);
    auto it = by_name_.find(Key{parent, std::string(name)});
    if (it == by_name_.end()) {
        return;
    }
    nodes_[it->second].linked = false;
    Log('U', it->second);
    by_name_.erase(it);
}

bool NodeTable::IsShard(Ino ino) const {
    absl::ReaderMutexLock lock(&mu_);
    auto it = nodes_.find(ino);
    return it != nodes_.end() && it->second.shard;
}

void NodeTable::Opened(Ino ino) {
    absl::MutexLock lock(&mu_);
    if (auto it = nodes_.find(ino); it != nodes_.end()) {
        ++it->second.opens;
    }
}

std::optional<Ino> NodeTable::OpenAt(Ino parent, std::string_view name) const {
    absl::ReaderMutexLock lock(&mu_);
    auto it = by_name_.find(Key{parent, std::string(name)});
    if (it == by_name_.end()) {
        return std::nullopt;
    }
    auto n = nodes_.find(it->second);
    return n != nodes_.end() && n->second.opens > 0 ? std::optional<Ino>(it->second) : std::nullopt;
}

bool NodeTable::Hide(Ino ino, std::string_view hidden) {
    absl::MutexLock lock(&mu_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) {
        return false;
    }
    Node& n = it->second;
    if (n.linked) {
        by_name_.erase(Key{n.parent, n.name});
    }
    n.name = std::string(hidden);
    n.linked = true;
    n.hidden = true;
    by_name_[Key{n.parent, n.name}] = ino;
    Log('M', ino, n.parent, n.name);
    return n.opens > 0;
}

std::optional<std::string> NodeTable::Closed(Ino ino) {
    absl::MutexLock lock(&mu_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end() || it->second.opens == 0) {
        return std::nullopt;
    }
    if (--it->second.opens > 0 || !it->second.hidden) {
        return std::nullopt;
    }
    return PathLocked(ino);
}

bool NodeTable::SameVersion(Ino ino, uint64_t size, int64_t mtime_secs, int32_t mtime_nsecs) {
    absl::MutexLock lock(&mu_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) {
        return false;
    }
    auto now = std::make_tuple(size, mtime_secs, mtime_nsecs);
    bool same = it->second.version == now;
    it->second.version = now;
    return same;
}

std::string NodeTable::HiddenName(Ino ino) { return ".zh-unlinked-" + std::to_string(ino); }

bool NodeTable::IsHidden(std::string_view name) { return name.starts_with(".zh-unlinked-"); }

// A record: op (1 byte), inode (8), parent (8), name length (2), name.
void NodeTable::Log(char op, Ino ino, Ino parent, std::string_view name) {
    if (journal_ < 0) {
        return;
    }
    char rec[19 + 256];
    uint16_t len = static_cast<uint16_t>(std::min<size_t>(name.size(), 255));
    rec[0] = op;
    std::memcpy(rec + 1, &ino, 8);
    std::memcpy(rec + 9, &parent, 8);
    std::memcpy(rec + 17, &len, 2);
    if (len > 0) {
        std::memcpy(rec + 19, name.data(), len);
    }
    // One write per record, appended under the table's lock: the journal stays in order.
    (void)!::write(journal_, rec, 19 + len);
}

void NodeTable::SetJournal(int fd) {
    absl::MutexLock lock(&mu_);
    journal_ = fd;
}

absl::Status NodeTable::Replay(int fd) {
    std::string all;
    char buf[65536];
    ssize_t n;
    off_t at = 0;
    while ((n = ::pread(fd, buf, sizeof buf, at)) > 0) {
        all.append(buf, static_cast<size_t>(n));
        at += n;
    }
    absl::MutexLock lock(&mu_);
    size_t pos = 0;
    while (pos + 19 <= all.size()) {
        char op = all[pos];
        Ino ino, parent;
        uint16_t len;
        std::memcpy(&ino, all.data() + pos + 1, 8);
        std::memcpy(&parent, all.data() + pos + 9, 8);
        std::memcpy(&len, all.data() + pos + 17, 2);
        if (pos + 19 + len > all.size()) {
            break;  // a record cut short by the predecessor's death: the journal ends there
        }
        std::string name(all.data() + pos + 19, len);
        pos += 19 + len;
        auto it = nodes_.find(ino);
        switch (op) {
            case 'A':
            case 'S': {
                Node node{parent, name, uint64_t{1} << 62, true};  // never dropped
                node.shard = op == 'S';
                node.inherited = true;
                nodes_[ino] = std::move(node);
                by_name_[Key{parent, name}] = ino;
                next_ = std::max(next_, ino + 1);
                break;
            }
            case 'M':
                if (it != nodes_.end()) {
                    if (it->second.linked) {
                        by_name_.erase(Key{it->second.parent, it->second.name});
                    }
                    it->second.parent = parent;
                    it->second.name = name;
                    it->second.linked = true;
                    by_name_[Key{parent, name}] = ino;
                }
                break;
            case 'U':
                if (it != nodes_.end() && it->second.linked) {
                    by_name_.erase(Key{it->second.parent, it->second.name});
                    it->second.linked = false;
                }
                break;
            case 'F':
                if (it != nodes_.end()) {
                    if (it->second.linked) {
                        by_name_.erase(Key{it->second.parent, it->second.name});
                    }
                    nodes_.erase(it);
                }
                break;
            case 'B': {
                // parent: the backing id; name: the file's device and inode number.
                Backing b{.id = static_cast<int32_t>(parent)};
                if (name.size() == 16) {
                    std::memcpy(&b.file_dev, name.data(), 8);
                    std::memcpy(&b.file_ino, name.data() + 8, 8);
                }
                if (b.id == 0) {
                    inherited_backings_.erase(ino);
                } else {
                    inherited_backings_[ino] = b;
                }
                break;
            }
            default:
                return absl::DataLossError(absl::StrFormat("node journal: unknown record '%c' at byte %d", op, pos));
        }
    }
    return absl::OkStatus();
}

bool NodeTable::Inherited(Ino ino) const {
    absl::ReaderMutexLock lock(&mu_);
    auto it = nodes_.find(ino);
    return it != nodes_.end() && it->second.inherited;
}

void NodeTable::RecordBacking(Ino ino, const Backing& b) {
    char file[16];
    std::memcpy(file, &b.file_dev, 8);
    std::memcpy(file + 8, &b.file_ino, 8);
    absl::MutexLock lock(&mu_);
    Log('B', ino, static_cast<uint32_t>(b.id), std::string_view(file, b.id != 0 ? 16 : 0));
}

absl::flat_hash_map<Ino, NodeTable::Backing> NodeTable::InheritedBackings() const {
    absl::ReaderMutexLock lock(&mu_);
    return inherited_backings_;
}

size_t NodeTable::size() const {
    absl::ReaderMutexLock lock(&mu_);
    return nodes_.size();
}

}  // namespace zerohop::fuse
