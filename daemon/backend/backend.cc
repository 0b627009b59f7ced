#include "backend/backend.h"

#include <algorithm>
#include <cstring>

#include "base/status_macros.h"

namespace zerohop {

absl::StatusOr<size_t> StringSource::Read(char* buf, size_t capacity) {
    size_t n = std::min(capacity, data_.size());
    if (n != 0) {
        std::memcpy(buf, data_.data(), n);
    }
    data_.remove_prefix(n);
    return n;
}

absl::StatusOr<AttributeMap> ProjectAttributes(std::string_view encoded, const std::vector<std::string>& names,
                                               std::string_view name, const ObjectInfo& info) {
    EncodedAttributes attrs(encoded);
    ZH_RETURN_IF_ERROR(attrs.Validate());
    AttributeMap out;
    bool all_user = names.empty();
    bool all_system = false;
    for (const std::string& n : names) {
        all_user |= n == "*" || n == "**";
        all_system |= n == "**";
    }
    if (all_user) {
        attrs.ForEach([&](std::string_view n, ValueView v) {
            out.insert_or_assign(std::string(n), v.ToValue());
            return true;
        });
    }
    if (all_system) {
        for (std::string_view n : kSystemAttributeNames) {
            if (auto v = SystemAttribute(n, name, info)) {
                out.insert_or_assign(std::string(n), v->ToValue());
            }
        }
    }
    for (const std::string& n : names) {
        if (n == "*" || n == "**") {
            continue;
        }
        std::optional<ValueView> v =
            IsSystemAttributeName(n) ? SystemAttribute(n, name, info) : attrs.Find(n);
        if (v) {
            out.insert_or_assign(n, v->ToValue());
        }
    }
    return out;
}

}  // namespace zerohop
