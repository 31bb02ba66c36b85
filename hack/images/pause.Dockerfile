# The pod sandbox ("pause") image for the real node's containerd: any process that sleeps until
# it is told to stop. sh as PID 1 ignores SIGTERM unless trapped, hence the trap.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ENTRYPOINT ["sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
