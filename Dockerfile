# hostbot: one static binary on an empty image, running as a non-root user on port 80.
#
# From source (needs the rust image from a registry):
#   docker build -t yourname/hostbot:v1 .
# From a binary built on the host (no registry needed):
#   RUSTFLAGS='-C target-feature=+crt-static' \
#     cargo build --release -p hostbot --target x86_64-unknown-linux-gnu
#   docker build --target prebuilt -t yourname/hostbot:v1 .
#
# Both images are identical in content: /hostbot and a one-line /etc/passwd. The binary is a
# static-pie glibc build, so scratch needs no libc, no CA certificates (hostbot makes no TLS
# calls) and no tzdata (time is reported in UTC unless TZ/localtime say otherwise).
#
# Port 80 as non-root: since Docker 20.10 every container gets its own network namespace with
# net.ipv4.ip_unprivileged_port_start=0, so any user may bind port 80 inside it; no capability
# or setcap is needed. Kubernetes does not do this by default: the manifests set the same sysctl
# through the pod's securityContext.sysctls (a "safe" sysctl since Kubernetes 1.22). With
# `--network host` the host's setting applies; hostbot then exits with a message naming the port
# and the ways out (PORT=8080, cap_net_bind_service, or the sysctl).
#
# `--build-arg VERSION=v2` sets the version hostbot reports (its VERSION variable) and the label.
#
# The `prebuilt` stage comes first on purpose: the classic builder builds every stage up to
# --target, so this order lets `--target prebuilt` build without pulling the rust image.

ARG VERSION=0.1.0

FROM scratch AS prebuilt
ARG VERSION
LABEL org.opencontainers.image.title="hostbot" \
      org.opencontainers.image.description="Answers GET / with the server's time and hostname as JSON" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV VERSION="${VERSION}"
COPY docker/passwd /etc/passwd
COPY target/x86_64-unknown-linux-gnu/release/hostbot /hostbot
USER 65532:65532
EXPOSE 80
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/hostbot", "--healthcheck"]
ENTRYPOINT ["/hostbot"]

FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY hostbot hostbot
COPY harness harness
COPY src src
COPY tests tests
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --locked --release -p hostbot --target x86_64-unknown-linux-gnu

FROM scratch AS runtime
ARG VERSION
LABEL org.opencontainers.image.title="hostbot" \
      org.opencontainers.image.description="Answers GET / with the server's time and hostname as JSON" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV VERSION="${VERSION}"
COPY docker/passwd /etc/passwd
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/hostbot /hostbot
USER 65532:65532
EXPOSE 80
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/hostbot", "--healthcheck"]
ENTRYPOINT ["/hostbot"]
