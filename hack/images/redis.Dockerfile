# Redis from Debian's redis-server on the local base: the stand-in for the official redis image in the
# compose tests and for the real node's managed Redis (the compose file and the operator keep the official one).
# Built with --network host: apt-get needs the Debian mirror.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# uid/gid 999 like the official image (the operator's Redis pods run as 999), made before the package
# would pick one of its own
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 redis \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/redis --shell /usr/sbin/nologin redis \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER 999:999
EXPOSE 6379
# like the official image's entrypoint: a redis-server command gets --protected-mode no (no config
# file is used, so Redis would refuse clients from other containers on the compose network)
ENTRYPOINT ["sh", "-c", "if [ \"$1\" = redis-server ]; then shift; exec redis-server --protected-mode no \"$@\"; fi; exec \"$@\"", "redis-entrypoint"]
CMD ["redis-server"]
