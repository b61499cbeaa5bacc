# syntax=docker/dockerfile:1
# Baton's container image (docs/deploy.md "Container"):
#   docker build -t baton .
#   docker run --rm -e BATON_NATS_URL=nats://nats:4222 -p 9464:9464 baton
# The daemon reads /etc/baton/baton.toml (the shipped example, templates in
# /etc/baton/templates); mount your own over it. HTTP listens on 0.0.0.0:9464.

# Builder: the crate needs Rust ≥ 1.89 (Cargo.toml rust-version).
FROM rust:1.89-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the build between builds; the binary is
# copied out of the cached target dir before the mount goes away.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin baton \
    && install -D -m 0755 target/release/baton /out/baton

# Runtime: glibc (the binary links it), CA certificates for TLS to NATS and
# page delivery, bash for the health probe; nothing else.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 baton \
    && useradd --system --uid 10001 --gid baton --no-create-home --shell /usr/sbin/nologin baton
COPY --from=builder /out/baton /usr/local/bin/baton
COPY config/baton.toml /etc/baton/baton.toml
COPY config/templates/ /etc/baton/templates/
COPY LICENSE /usr/share/doc/baton/LICENSE
ENV BATON_CONFIG=/etc/baton/baton.toml \
    BATON_HTTP_LISTEN=0.0.0.0:9464
USER 10001:10001
EXPOSE 9464
# /readyz: 200 once NATS is connected, the streams exist and the projector
# has replayed (README "HTTP API"). No curl in the image: bash's /dev/tcp
# sends the request and the status line is checked.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9464 && printf 'GET /readyz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/baton"]
CMD ["serve"]
