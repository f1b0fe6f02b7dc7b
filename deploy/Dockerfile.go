# syntax=docker/dockerfile:1
# One Go twin per image: SERVICE=ingest, session-cache or fanout
# (go-reference/cmd/<SERVICE>). Build context: go-reference/ (the module is
# self-contained: the protobuf code generated from proto/ is checked in).
ARG GO_VERSION=1.26
ARG DEBIAN_RELEASE=bookworm

FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
ARG SERVICE=ingest
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Pure Go (franz-go, gorilla/websocket): a static binary without cgo.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -o /usr/local/bin/service "./cmd/${SERVICE}"

FROM debian:${DEBIAN_RELEASE}-slim
COPY --from=build /usr/local/bin/service /usr/local/bin/service
USER 65534:65534
ENTRYPOINT ["/usr/local/bin/service"]
