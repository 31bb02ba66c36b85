# A build image: FROM_IMAGE plus the host-made wheelhouse (this build's context) and pip settings
# that install from it only. hack/images/build passes it as BUILD_IMAGE to the build stages of the
# lsml and backend Dockerfiles; final stages copy only the venv, never /wheels.
ARG FROM_IMAGE
FROM ${FROM_IMAGE}
# a build image: pip runs as root in the stages built FROM it
# hadolint ignore=DL3002
USER 0
COPY . /wheels
ENV PIP_NO_INDEX=1 \
    PIP_FIND_LINKS=/wheels \
    PIP_DISABLE_PIP_VERSION_CHECK=1
