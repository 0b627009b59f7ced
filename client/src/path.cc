#include "zerohop/path.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace zerohop {

namespace {

absl::Status Invalid(std::string_view text, size_t pos, std::string_view why) {
    std::string shown(text.substr(0, 200));
    for (char& c : shown) {
        if (c == '\0') {
            c = '?';
        }
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid path \"%s%s\" at byte %d: %s", shown, text.size() > 200 ? "..." : "", pos, why));
}

}  // namespace

absl::Status Path::ValidateComponent(std::string_view c) {
    if (c.empty()) {
        return absl::InvalidArgumentError("invalid name: empty");
    }
    if (c.size() > kMaxComponentBytes) {
        return absl::InvalidArgumentError(
            absl::StrFormat("invalid name: %d bytes, the limit is %d", c.size(), kMaxComponentBytes));
    }
    if (c == "." || c == "..") {
        return absl::InvalidArgumentError(absl::StrFormat("invalid name \"%s\": '.' and '..' are reserved", c));
    }
    for (char ch : c) {
        if (ch == '/' || ch == '\0') {
            return absl::InvalidArgumentError("invalid name: contains '/' or NUL");
        }
    }
    return absl::OkStatus();
}

absl::StatusOr<Path> Path::Parse(std::string_view text) {
    if (text.empty() || text[0] != '/') {
        return Invalid(text, 0, "a path must start with '/'");
    }
    if (text.size() > 1 && text.back() == '/' && text[text.size() - 2] != '/') {
        text.remove_suffix(1);
    }
    if (text.size() > kMaxPathBytes) {
        return Invalid(text, kMaxPathBytes,
                       absl::StrFormat("path is %d bytes, the limit is %d", text.size(), kMaxPathBytes));
    }
    Path p;
    p.text_.assign(text.data(), text.size());
    if (text.size() == 1) {
        return p;
    }
    size_t start = 1;
    while (start <= text.size()) {
        size_t end = text.find('/', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        std::string_view c = text.substr(start, end - start);
        if (c.empty()) {
            return Invalid(text, start, "empty component ('//')");
        }
        if (c.size() > kMaxComponentBytes) {
            return Invalid(text, start,
                           absl::StrFormat("component is %d bytes, the limit is %d", c.size(), kMaxComponentBytes));
        }
        if (c == "." || c == "..") {
            return Invalid(text, start, "'.' and '..' components are not allowed");
        }
        size_t nul = c.find('\0');
        if (nul != std::string_view::npos) {
            return Invalid(text, start + nul, "NUL byte");
        }
        p.ends_.push_back(static_cast<uint16_t>(end));
        start = end + 1;
    }
    return p;
}

std::string_view Path::component(size_t i) const {
    size_t begin = i == 0 ? 1 : ends_[i - 1] + 1;
    return std::string_view(text_).substr(begin, ends_[i] - begin);
}

std::string_view Path::key() const {
    if (ends_.size() < 2) {
        return {};
    }
    return std::string_view(text_).substr(ends_[0] + 1);
}

std::string_view Path::Prefix(size_t n) const {
    if (n == 0) {
        return std::string_view(text_).substr(0, 1);
    }
    return std::string_view(text_).substr(0, ends_[std::min(n, ends_.size()) - 1]);
}

Path Path::Parent() const {
    if (ends_.size() <= 1) {
        return Path();
    }
    Path p;
    p.text_ = text_.substr(0, ends_[ends_.size() - 2]);
    p.ends_.assign(ends_.begin(), ends_.end() - 1);
    return p;
}

absl::StatusOr<Path> Path::Child(std::string_view name) const {
    ZH_RETURN_IF_ERROR(ValidateComponent(name));
    std::string text = is_root() ? "/" : text_ + "/";
    text.append(name.data(), name.size());
    if (text.size() > kMaxPathBytes) {
        return Invalid(text, kMaxPathBytes,
                       absl::StrFormat("path is %d bytes, the limit is %d", text.size(), kMaxPathBytes));
    }
    Path p;
    p.text_ = std::move(text);
    p.ends_ = ends_;
    p.ends_.push_back(static_cast<uint16_t>(p.text_.size()));
    return p;
}

bool Path::Contains(const Path& other) const {
    if (is_root()) {
        return true;
    }
    if (other.text_.size() < text_.size() || other.text_.compare(0, text_.size(), text_) != 0) {
        return false;
    }
    return other.text_.size() == text_.size() || other.text_[text_.size()] == '/';
}

}  // namespace zerohop
