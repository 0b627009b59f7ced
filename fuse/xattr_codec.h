#pragma once
// Object attributes as extended attributes: `user.<name>` carries attribute <name>, its
// typed value as text that round-trips:
//
//   string      the UTF-8 bytes as they are
//   blob        the bytes as they are
//   int64       decimal: -42
//   double      shortest text that reads back to the same double: 0.1, 1e+300, nan, inf
//   bool        true | false
//   timestamp   <secs>.<9-digit nanos>: 1700000000.000000042
//   int64 array, double array   [1,2,3]  (elements as above, comma separated, no spaces)
//
// Setting an xattr keeps the attribute's current type when the text parses as it (so
// `setfattr -v 41` on an int64 stays an int64); a new attribute, or text that does not
// parse, becomes a string (a blob if it is not valid UTF-8).

#include <optional>
#include <string>
#include <string_view>

#include "zerohop/value.h"

namespace zerohop::fuse {

inline constexpr std::string_view kXattrPrefix = "user.";

std::string ValueToXattr(const Value& v);
// `current`: the attribute's type now, if it exists.
Value XattrToValue(std::string_view text, std::optional<ValueType> current);

}  // namespace zerohop::fuse
