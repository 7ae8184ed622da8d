# syntax=docker/dockerfile:1
#
# playgate container image.
#   docker build -t playgate:dev .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=postgres://user:pass@db:5432/playgate playgate:dev
#
# The builder's Rust release is pinned to the one CI lints and tests with
# (scripts/check-deploy compares it with `rustc --version`); its Debian release
# matches the runtime image's, so the binary links against the same glibc.

ARG RUST_VERSION=1.95

############################ build ############################
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src

# 1. Dependencies only: a layer that changes when Cargo.toml/Cargo.lock do,
#    not on every source edit. Stub targets let cargo resolve and compile
#    every dependency with the exact locked versions.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

# 2. The application. Migrations (sql/) are embedded with include_str!, so
#    they are needed here and not in the runtime image.
COPY src ./src
COPY sql ./sql
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -D -m 0755 target/release/playgate /out/playgate

############################ runtime ############################
# distroless/cc: glibc, libgcc and CA certificates, no shell, no package
# manager; the :nonroot variant runs as UID/GID 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime

LABEL org.opencontainers.image.title="playgate" \
      org.opencontainers.image.description="Authorization backend for streaming servers" \
      org.opencontainers.image.licenses="MIT"

COPY --from=build /out/playgate /usr/local/bin/playgate

# Fixed numeric UID:GID so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532

ENV PLAYGATE_LISTEN=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080

# No curl in the image: the binary asks its own /readyz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["playgate", "healthcheck"]

# SIGTERM: stop accepting, give in-flight requests 25 s, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["playgate"]
CMD ["serve"]
