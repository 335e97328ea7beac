# syntax=docker/dockerfile:1
# The fledge controller image: a release build of `fledge` on distroless (glibc, CA certificates,
# no shell, no package manager), running as an unprivileged user.
#
#   docker build -t registry.example/fledge:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t registry.example/fledge:0.1.0 --push .
#
# BuildKit's cache mounts keep the cargo registry and target directory between builds, so a
# source change rebuilds fledge only, not its dependencies.

ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin fledge \
 && cp target/release/fledge /fledge

# distroless/cc: glibc and libgcc for a Rust binary, nothing else. `nonroot` is uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /fledge /usr/local/bin/fledge
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/fledge"]
CMD ["controller"]
LABEL org.opencontainers.image.title="fledge" \
      org.opencontainers.image.description="Progressive delivery for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
