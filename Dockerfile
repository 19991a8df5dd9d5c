# The project itself: one image for every task. The command is the task's name:
#   docker run … ambient-sensors serve | collect | monitor | simulate
# `deno task` computes the permission flags from DATA_DIR (/data here) exactly as on a Pi; see
# docs/architecture.md. deploy/compose.yaml runs it next to Mosquitto and TimescaleDB.
ARG DENO_VERSION=2.9.6
FROM denoland/deno:debian-${DENO_VERSION}

WORKDIR /app
# Dependencies first, so a code change does not download them again.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY . .
# Everything cached at build time: nothing is downloaded when a container starts.
RUN deno install --frozen \
    && deno cache --frozen main.ts collector.ts monitor.ts simulate.ts \
       lib/process/print_permission_flags.ts lib/db/_pglite_worker.ts \
    && mkdir -p /data && chown deno:deno /data

ENV DATA_DIR=/data \
    HOST=0.0.0.0 \
    MQTT_LISTEN=0.0.0.0:1883 \
    DENO_NO_UPDATE_CHECK=1 \
    NO_COLOR=1
VOLUME /data
USER deno
EXPOSE 8000 1883
ENTRYPOINT ["deno", "task"]
CMD ["serve"]
