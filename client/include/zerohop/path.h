#pragma once
// Paths of the unified namespace: `/<container>/<key...>`.
//
// A Path is always valid once constructed: it starts with '/', has no empty, "." or ".."
// component, no NUL byte, every component is at most 255 bytes and the whole path at most
// 32 KiB (deeper than PATH_MAX: a file system reaches such paths a directory at a time,
// with *at() calls). A single trailing '/' is accepted and dropped.
//
//   auto p = zerohop::Path::Parse("/users/tables/people/alice");
//   if (!p.ok()) return p.status();          // InvalidArgument naming the bad byte
//   p->container();                           // "users"
//   p->key();                                 // "tables/people/alice"
//   p->name();                                // "alice"
//   p->Parent().str();                        // "/users/tables/people"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace zerohop {

inline constexpr size_t kMaxPathBytes = 32768;
inline constexpr size_t kMaxComponentBytes = 255;

class Path {
public:
    // The root "/", parent of every container.
    Path() : text_("/") {}

    static absl::StatusOr<Path> Parse(std::string_view text);
    // Checks one component (a container name, a file name) on its own.
    static absl::Status ValidateComponent(std::string_view component);

    const std::string& str() const { return text_; }
    bool is_root() const { return ends_.empty(); }
    // True for "/<container>" alone.
    bool is_container_root() const { return ends_.size() == 1; }
    size_t depth() const { return ends_.size(); }
    std::string_view component(size_t i) const;

    // "" for the root.
    std::string_view container() const { return is_root() ? std::string_view() : component(0); }
    // Everything after "/<container>/", "" for the root and a container root.
    std::string_view key() const;
    // The last component, "" for the root.
    std::string_view name() const { return is_root() ? std::string_view() : component(depth() - 1); }

    // The root's parent is the root.
    Path Parent() const;
    // The text of the first `n` components ("/" for n == 0), without building a Path.
    std::string_view Prefix(size_t n) const;
    absl::StatusOr<Path> Child(std::string_view name) const;
    // True when `other` is this path or lies below it.
    bool Contains(const Path& other) const;

    friend bool operator==(const Path& a, const Path& b) { return a.text_ == b.text_; }
    friend bool operator!=(const Path& a, const Path& b) { return a.text_ != b.text_; }
    friend bool operator<(const Path& a, const Path& b) { return a.text_ < b.text_; }

private:
    std::string text_;
    // Offset one past the end of each component in text_.
    std::vector<uint16_t> ends_;
};

}  // namespace zerohop
