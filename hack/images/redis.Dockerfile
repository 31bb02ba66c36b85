# Redis from Debian's redis-server on the local base: the stand-in for redis:7-alpine in the
# compose tests (the scaffold's docker-compose.yml keeps the official image).
# Built with --network host: apt-get needs the Debian mirror.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis:redis
EXPOSE 6379
# like the official image's entrypoint: a redis-server command gets --protected-mode no (no config
# file is used, so Redis would refuse clients from other containers on the compose network)
ENTRYPOINT ["sh", "-c", "if [ \"$1\" = redis-server ]; then shift; exec redis-server --protected-mode no \"$@\"; fi; exec \"$@\"", "redis-entrypoint"]
CMD ["redis-server"]
