# heartbeat in a minimal image: the compiled binary on distroless (glibc, no shell, non-root).
#   docker build -t heartbeat .
#   docker run --network host -e HEARTBEAT_ADDRESS=239.0.0.1:27999 -e HEARTBEAT_SOURCE=nginx \
#     -e HEARTBEAT_CAPACITY=512 heartbeat
# Every setting is a HEARTBEAT_* variable (README: Options).
FROM oven/bun:1.4.5 AS build
WORKDIR /src
COPY deno.json package.json ./
COPY src ./src
COPY scripts/build.ts ./scripts/build.ts
# amd64 or arm64, from docker buildx; the same build the release archives come from.
ARG TARGETARCH=amd64
RUN bun scripts/build.ts --no-archives --target "linux-$( [ "$TARGETARCH" = arm64 ] && echo arm64 || echo x64 )" \
 && cp dist/heartbeat-linux-* /heartbeat

# glibc, libpthread, libdl and libm are all the binary needs (ldd; tested by test/binary.test.ts).
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /heartbeat /heartbeat
USER nonroot
ENTRYPOINT ["/heartbeat"]
