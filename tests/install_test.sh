#!/bin/sh
# What `meson install` puts on a machine is the public API and nothing else, and a program
# builds against it with pkg-config alone: the examples, compiled outside the tree.
#   install_test.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
dest=$(mktemp -d /tmp/zh-install-XXXXXX)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >/dev/null

# The headers: exactly the public ones.
headers=$(cd "$dest" && find . -name '*.h' | sed 's|.*/include/||' | sort | tr '\n' ' ')
want="zerohop/client.h zerohop/object.h zerohop/operations.h zerohop/path.h zerohop/status.h zerohop/stream.h zerohop/value.h zerohop/zerohop.h "
if [ "$headers" != "$want" ]; then
    echo "installed headers: $headers"
    echo "expected:          $want"
    exit 1
fi

# pkg-config finds the library and its flags; the examples build and link against them.
pc=$(dirname "$(find "$dest" -name zerohop.pc)")
export PKG_CONFIG_PATH="$pc" PKG_CONFIG_SYSROOT_DIR="$dest"
flags=$(pkg-config --cflags --libs zerohop)
for example in items objects_and_streams; do
    c++ -std=c++20 "$src/examples/$example.cc" -o "$dest/$example" $flags
done
cc -std=c11 -Wall -Werror "$src/examples/c_api.c" -o "$dest/c_api" $flags
echo "installed: $(echo "$headers" | wc -w) public headers; the examples build against pkg-config zerohop"
