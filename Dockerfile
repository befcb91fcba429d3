# heartbeat as a container image: FROM scratch, the compiled binary and exactly the libraries it
# loads, run as the non-root user 65532. The build context is a root file system that
# scripts/build.ts stages; it builds and saves the image too:
#   npx bun scripts/build.ts --target linux-x64 --image     (or: npm run build -- --target linux-x64 --image)
#   podman load -i dist/heartbeat-VERSION-linux-x64.image.tar
# To build it by hand from the staged folder:
#   docker build -f Dockerfile dist/image-linux-x64
# Run it with the host's network, for multicast (README: Containers):
#   podman run --network host -e HEARTBEAT_ADDRESS=239.0.0.1:27999 -e HEARTBEAT_SOURCE=nginx \
#     -e HEARTBEAT_CAPACITY=512 localhost/heartbeat:VERSION-linux-x64
FROM scratch
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
COPY . /
USER 65532:65532
ENTRYPOINT ["/heartbeat"]
LABEL org.opencontainers.image.title="heartbeat" \
      org.opencontainers.image.description="Tells Apache mod_lbmethod_heartbeat balancers how much spare capacity this server has, as mod_heartbeat does" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
