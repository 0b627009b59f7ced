# The zerohop image (zerohop/zerohop:0.1.0, what deploy/ names): zerohopd, zerohop-csi,
# zerohop-fuse, zh, libzerohop and its Python binding. Without a Docker engine,
# tools/build-image.sh builds the same image with mmdebstrap and umoci.
#   docker build -t zerohop/zerohop:0.1.0 .
FROM debian:bookworm AS build
COPY . /src
WORKDIR /src
RUN tools/install-deps.sh \
 && meson setup /build -Dbuildtype=release --prefix=/usr \
 && ninja -C /build \
 && DESTDIR=/install meson install -C /build --no-rebuild --quiet

FROM debian:bookworm-slim
COPY tools/image-packages.txt /tmp/
RUN apt-get update \
 && grep -v '^\s*\(#\|$\)' /tmp/image-packages.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/image-packages.txt \
 && mkdir -p /run/zerohop /var/lib/zerohop /csi
COPY --from=build /install/ /
RUN ldconfig
CMD ["zerohopd", "--config", "/etc/zerohop/zerohopd.yaml"]
