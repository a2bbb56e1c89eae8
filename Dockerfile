# Builds the single oxidex binary and ships it on a small Debian base.
FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked --bin oxidex && cp target/release/oxidex /usr/local/bin/oxidex

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/oxidex --create-home oxidex
COPY --from=build /usr/local/bin/oxidex /usr/local/bin/oxidex
USER oxidex
WORKDIR /var/lib/oxidex
EXPOSE 5556 5557 5558
ENTRYPOINT ["/usr/local/bin/oxidex"]
CMD ["serve", "/etc/oxidex/config.yaml"]
