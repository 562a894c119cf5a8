# ssogate's container image: a Rust build stage, then a runtime stage with only the binary,
# CA certificates and the example config.
#
#   docker build -t ssogate .
#   docker run --read-only --cap-drop ALL -p 4180:4180 \
#     -v $PWD/ssogate.toml:/etc/ssogate/ssogate.toml:ro -v $PWD/secrets:/run/secrets/ssogate:ro ssogate
#
# Builds with the classic builder (Debian's docker.io, no buildx): no `# syntax=` line and no
# `RUN --mount`. The base images are arguments, so a build needs no public registry when both
# are at hand (tests/container/run.sh makes them with debootstrap).
#
# The runtime base is distroless `cc` (glibc and libgcc, which the binary links against, a
# `nonroot` user 65532, no shell, no package manager: ~25 MB, and nothing for an attacker to
# run). Debian slim would add a shell and apt for no use: probes call the binary itself.
ARG BUILD_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# checkov:skip=CKV_DOCKER_7: the base images are build arguments; their defaults above carry version tags
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# Dependencies first, built against stub sources: this layer is reused until Cargo.toml or
# Cargo.lock changes, so a source change rebuilds only ssogate itself.
COPY Cargo.toml Cargo.lock ./
# The build's C flags (mimalloc without transparent huge pages).
COPY .cargo ./.cargo
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/.fingerprint/ssogate-* target/release/deps/ssogate-* \
           target/release/deps/libssogate-* target/release/ssogate*
COPY src ./src
# The same build as CI's release build.
RUN cargo build --release --locked \
 && ./target/release/ssogate --version

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ssogate" \
      org.opencontainers.image.description="Single sign-on gateway for Amazon Cognito and OpenID Connect" \
      org.opencontainers.image.source="https://github.com/ssogate/ssogate" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The build stage's CA bundle, so the runtime base need not bring one (the provider's TLS
# uses the compiled-in Mozilla roots; this serves `provider.ca_file`-less tools and users).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/release/ssogate /usr/local/bin/ssogate
COPY config/ssogate.example.toml /etc/ssogate/ssogate.toml
ENV PATH=/usr/local/bin:/usr/bin:/bin
# Non-root, the same uid as distroless's `nonroot` and deploy/kubernetes' runAsUser. Nothing
# is written to the filesystem: the image runs with a read-only root.
USER 65532:65532
EXPOSE 4180 9180
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["ssogate", "health", "--url", "http://127.0.0.1:4180/oauth2/ping"]
ENTRYPOINT ["ssogate"]
CMD ["serve", "--config", "/etc/ssogate/ssogate.toml"]
