# One image for every service; the command picks it: `tailwire run <service>`.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY shared shared
COPY services services
COPY cli cli
COPY testing testing
COPY examples examples
RUN python -m venv /opt/tailwire \
 && /opt/tailwire/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/tailwire/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
# nftables and iproute2 for the nodeagent; the other services ignore them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iproute2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/tailwire /opt/tailwire
ENV PATH=/opt/tailwire/bin:$PATH PYTHONUNBUFFERED=1
# Non-root by default; the nodeagent's DaemonSet runs it as root with the capabilities it needs.
USER 65532:65532
ENTRYPOINT ["tailwire"]
CMD ["--help"]
