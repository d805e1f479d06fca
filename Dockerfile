# taskq images for the docker-compose demo (docs/DOCKER.md).
#
#   docker build -t taskq .                   # the worker/client image (last stage)
#   docker build --target redis -t taskq-redis .
#
# Every stage starts from debian:bookworm-slim. Stages that run apt-get need to
# reach the Debian mirror: where the build network has no outside access, build
# with `--network host` (docker-compose.yml does).
#
# Stage order matters to the classic builder, which builds every stage up to
# the target: `redis` comes first so that it is cached by the time the worker
# image is built, and `runtime` comes last so that it is the default target.

# ---- redis: Redis 7 from Debian, on the same base image --------------------
FROM debian:bookworm-slim AS redis
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis -m 750 /data
USER redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
HEALTHCHECK --interval=2s --timeout=3s --start-period=10s --retries=5 \
    CMD redis-cli ping | grep -q PONG
# No password and protected mode off: reachable only on the compose network
# (the port is not published). Add --requirepass before publishing it.
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", \
     "--appendonly", "yes", "--dir", "/data"]

# ---- build: the project's own Makefile -------------------------------------
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libhiredis-dev libevent-dev libjansson-dev libyajl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what `make` reads, so that editing tests or docs does not rebuild.
COPY Makefile ./
COPY tests/tests.mk tests/
COPY common common
COPY broker broker
COPY client client
COPY worker worker
COPY docs/examples docs/examples
RUN make -j"$(nproc)" all build/examples/workload \
 && make install PREFIX=/usr/local DESTDIR=/out \
 && install -m 755 build/examples/workload /out/usr/local/bin/taskq-workload \
 && install -d /out/usr/local/lib/taskq \
 && install -m 755 build/libexample_tasks.so /out/usr/local/lib/taskq/

# ---- runtime: workers and clients -------------------------------------------
FROM debian:bookworm-slim AS runtime
# libssl3: libcrypto, which taskq loads when signing keys are given
# (docs/SECURITY.md).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libhiredis0.14 libevent-2.1-7 libevent-pthreads-2.1-7 libjansson4 libyajl2 libssl3 \
 && rm -rf /var/lib/apt/lists/*
# Binaries, libtaskq (static, shared, taskq.pc), the headers taskq.h and
# taskq_worker.h, the workload example, and the example task library.
COPY --from=build /out/usr/local/ /usr/local/
# Fail the build, not the first container, when a shared library is missing.
RUN ldconfig \
 && ! ldd /usr/local/bin/taskq-worker /usr/local/bin/taskq-submit \
          /usr/local/bin/taskq-workload | grep 'not found' \
 && useradd --system --uid 10001 --user-group --home-dir /nonexistent \
      --no-create-home --shell /usr/sbin/nologin taskq
USER taskq
# Worker defaults; every option has a TASKQ_* variable (taskq-worker --help).
# TASKQ_LOAD is a colon-separated list: append your own task libraries.
ENV TASKQ_REDIS_URL=redis://redis:6379/0 \
    TASKQ_LOAD=/usr/local/lib/taskq/libexample_tasks.so \
    TASKQ_HEALTH_FILE=/tmp/taskq-health
# Liveness is the worker's heartbeat, not its pid: the worker rewrites the
# health file after every heartbeat Redis accepted (every lease/5 = 2 s by
# default), so a file older than three heartbeats means the worker is stuck or
# cut off from Redis. Raise TASKQ_HEALTH_MAX_AGE with a longer TASKQ_LEASE.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD f="${TASKQ_HEALTH_FILE:-/tmp/taskq-health}"; \
        [ -f "$f" ] && [ $(( $(date +%s) - $(stat -c %Y "$f") )) -le "${TASKQ_HEALTH_MAX_AGE:-6}" ]
# SIGTERM is a warm shutdown; run with an init (`init: true`, `docker run
# --init`) and give it longer than TASKQ_SHUTDOWN_TIMEOUT to stop.
CMD ["taskq-worker"]
