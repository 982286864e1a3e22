# syntax=docker/dockerfile:1
# gpulse: GPU monitoring agent and Prometheus exporter.
# Build: docker build -t gpulse .   Run: see deploy/ and README "Container".

ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Full install (dev dependencies compile TypeScript); --ignore-scripts: `prepare` runs after the sources are in.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY agent ./agent
COPY collectors ./collectors
COPY exporters ./exporters
COPY edge ./edge
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="gpulse" \
      org.opencontainers.image.description="GPU monitoring agent and Prometheus exporter (nvidia-smi, DCGM, Jetson, Docker attribution)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/gpulse/gpulse"
ENV NODE_ENV=production \
    GPULSE_LISTEN=0.0.0.0:9489 \
    GPULSE_LOG_FORMAT=json
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json README.md ./
# Launchers: `gpulse-edge` (the edge preset under small-heap Node flags) and `gpulse-gateway`
# (the fleet gateway under a server's young generation).
COPY scripts/gpulse-edge scripts/gpulse-gateway ./scripts/
# Fixtures back `gpulse simulate`; real captures only, a few MB.
COPY collectors ./collectors-src
RUN mkdir -p collectors && for d in collectors-src/*/fixtures; do \
      [ -d "$d" ] && mkdir -p "collectors/$(basename "$(dirname "$d")")" && cp -r "$d" "collectors/$(basename "$(dirname "$d")")/"; \
    done; rm -rf collectors-src
# The node image ships user `node` (uid 1000). Reading GPUs needs /dev/nvidia* (the NVIDIA runtime
# grants it), the Docker socket needs its group: add them at run time (--group-add), not root.
USER node
EXPOSE 9489
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.GPULSE_LISTEN||'0.0.0.0:9489').split(':').pop()+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The command itself: its first line starts Node with the flags it needs (env -S, coreutils).
ENTRYPOINT ["/app/dist/agent/main.js"]
CMD ["run"]
