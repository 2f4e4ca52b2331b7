# Multi-stage build: a static certalloc on a distroless base, run as
# non-root. Build with: docker build -t certalloc .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/certalloc ./cmd/certalloc

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/certalloc /usr/local/bin/certalloc
USER nonroot:nonroot
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/certalloc"]
CMD ["--help"]
