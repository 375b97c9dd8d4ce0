# The shelf query server (docs/deployment.md, "Container image").
#
# Built by scripts/image, which stages the build context: `shelf` (the binary)
# and `runtime/` (ONNX Runtime and the model, as scripts/setup provisions and
# pins them). The base comes from scripts/container-base: Debian 12 minbase
# made from Debian's packages with debootstrap, so no image registry is needed.
#
# Runs as a non-root user (10001, numeric so `runAsNonRoot` can check it), with
# a read-only root filesystem: the only place it writes is the cache volume.
ARG BASE=localhost/shelf-base:bookworm
FROM ${BASE}
COPY --chown=0:0 shelf /usr/local/bin/shelf
COPY --chown=0:0 runtime/ /opt/shelf/runtime/
COPY --chown=10001:10001 cache/ /var/cache/shelf/
ENV SHELF_RUNTIME=/opt/shelf/runtime
USER 10001:10001
VOLUME ["/var/cache/shelf"]
EXPOSE 7700
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7700 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["shelf", "--log-format", "json", "serve", "--listen", "0.0.0.0:7700", "--cache", "/var/cache/shelf"]
CMD ["--store", "s3://acme-shelf/indexes", "--follow", "production"]
